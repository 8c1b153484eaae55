/** The RabbitMQ management HTTP API, as an operator's browser sees it (:15672). */
const MANAGEMENT = process.env.RABBITMQ_MANAGEMENT_URL ?? 'http://127.0.0.1:15672';
const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

export async function management(path: string): Promise<any> {
  const res = await fetch(`${MANAGEMENT}/api${path}`, { headers: { Authorization: AUTH } }).catch((err) => {
    throw new Error(`RabbitMQ management API unreachable at ${MANAGEMENT} (rabbitmq-plugins enable rabbitmq_management): ${err.message}`);
  });
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
  return res.json();
}

/** A queue of the default vhost as the management UI shows it (its counts lag by up to 5 s). */
export const managedQueue = (name: string): Promise<{ messages_ready: number; messages_unacknowledged: number; consumers: number }> =>
  management(`/queues/%2F/${encodeURIComponent(name)}`);
