// Buffers cut from one large region in the order they are taken and given back (the loader reads
// tensors in order and places them in order): a ring whose free space is the gap between the newest
// buffer's end and the oldest live buffer's start. A buffer given back out of order is freed once those
// taken before it are.
interface Slot {
  readonly start: number;
  readonly end: number;
  freed: boolean;
}

export class StagingRing {
  private readonly slots: Slot[] = []; // live, oldest first
  private readonly byBuffer = new WeakMap<Uint8Array, Slot>();

  constructor(private readonly region: Uint8Array) {}

  get capacity(): number {
    return this.region.byteLength;
  }

  /** Bytes held by buffers not yet given back (and those behind an older live one). */
  get bytesInUse(): number {
    if (this.slots.length === 0) return 0;
    const first = this.slots[0]!.start, last = this.slots[this.slots.length - 1]!.end;
    return last >= first ? last - first : this.capacity - first + last;
  }

  /** `bytes` contiguous bytes of the region, or undefined when the free gap is too small. */
  take(bytes: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > this.capacity) return undefined;
    const start = this.placeFor(bytes);
    if (start === undefined) return undefined;
    const slot: Slot = { start, end: start + bytes, freed: false };
    this.slots.push(slot);
    const buf = this.region.subarray(start, start + bytes);
    this.byBuffer.set(buf, slot);
    return buf;
  }

  give(buf: Uint8Array): void {
    const slot = this.byBuffer.get(buf);
    if (!slot || slot.freed) return;
    slot.freed = true;
    this.byBuffer.delete(buf);
    while (this.slots.length > 0 && this.slots[0]!.freed) this.slots.shift();
  }

  private placeFor(bytes: number): number | undefined {
    if (this.slots.length === 0) return 0;
    const tail = this.slots[0]!.start; // the oldest live byte
    const head = this.slots[this.slots.length - 1]!.end; // past the newest
    if (head > tail) {
      // Not wrapped: the space after the newest, else from the region's start up to the oldest.
      if (this.capacity - head >= bytes) return head;
      return tail >= bytes ? 0 : undefined;
    }
    // Wrapped (the newest buffer lies before the oldest): the gap between them.
    return tail - head >= bytes ? head : undefined;
  }
}
