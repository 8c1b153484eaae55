// Configuration for the knex CLI (`npm run migrate`, `npm run migrate:rollback`), read from the
// same environment as the service, which runs the same migrations itself at start-up.
import { loadConfig } from './src/config';
import { knexConfig } from './src/db/database';

export default knexConfig(loadConfig());
