// A single-consumer queue that an async iterator drains: the engine pushes a request's outputs as
// steps produce them, the HTTP handler awaits them. The producer watches `length` to stop producing
// for a consumer that has fallen behind, and `onTake` tells it when the consumer catches up.
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  /** Called after the consumer took an item, with what is left queued. */
  onTake?: (left: number) => void;
  private waiter?: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };
  private closed = false;
  private failure?: { error: unknown };

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** No more items; the consumer sees the end after draining what is queued. */
  close(): void {
    this.closed = true;
    this.settleWaiter();
  }

  /** Ends the queue with an error the consumer sees after what is queued. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    this.closed = true;
    this.settleWaiter();
  }

  private settleWaiter(): void {
    if (!this.waiter || this.items.length > 0) return;
    const w = this.waiter;
    this.waiter = undefined;
    if (this.failure) w.reject(this.failure.error);
    else w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) {
          const value = this.items.shift()!;
          this.onTake?.(this.items.length);
          return Promise.resolve({ value, done: false });
        }
        if (this.closed) return this.failure ? Promise.reject(this.failure.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiter = { resolve, reject };
        });
      },
    };
  }
}
