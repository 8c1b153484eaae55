/**
 * Collects items into batches: a batch starts when it is full (`maxBatch`), or `lingerMs` after
 * the first item waiting; at most `inFlight` batches run at once, and the batch that ends next
 * takes what arrived meanwhile at once (it has waited long enough). Items left when `accepting`
 * turns false stay where they are (a consumer's unacked messages: the broker delivers them again).
 */
export class Batcher<T> {
  private readonly buffer: T[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = 0;

  constructor(
    private readonly options: { maxBatch: number; lingerMs: number; inFlight: number; accepting: () => boolean },
    private readonly run: (batch: T[]) => Promise<void>,
  ) {}

  get waiting(): number {
    return this.buffer.length;
  }

  get batchesRunning(): number {
    return this.running;
  }

  add(item: T): void {
    this.buffer.push(item);
    if (this.buffer.length >= this.options.maxBatch) this.flush();
    // With every slot busy, the batch that ends next picks the buffer up.
    else if (!this.timer && this.running < this.options.inFlight) this.timer = setTimeout(() => this.flush(), this.options.lingerMs);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.running < this.options.inFlight && this.buffer.length > 0 && this.options.accepting()) {
      this.running++;
      const batch = this.buffer.splice(0, this.options.maxBatch);
      void this.run(batch).finally(() => {
        this.running--;
        this.flush();
      });
    }
  }
}
