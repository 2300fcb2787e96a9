// Books for the Mamba state pool: each running sequence owns one slot (conv + SSM state of every
// Mamba layer), whatever its length. A slot is cleared by the runner before a new sequence uses it.
export class StateSlotManager {
  private readonly freeSlots: number[];

  constructor(
    readonly numSlots: number,
    private readonly resetSlot: (slot: number) => void,
  ) {
    if (!(numSlots > 0)) throw new Error(`state slot manager: bad pool size ${numSlots}`);
    this.freeSlots = Array.from({ length: numSlots }, (_, i) => numSlots - 1 - i);
  }

  get numFree(): number {
    return this.freeSlots.length;
  }

  get numInUse(): number {
    return this.numSlots - this.freeSlots.length;
  }

  /** A cleared slot, or undefined when all are taken. */
  acquire(): number | undefined {
    const slot = this.freeSlots.pop();
    if (slot !== undefined) this.resetSlot(slot);
    return slot;
  }

  release(slot: number): void {
    if (slot < 0 || slot >= this.numSlots) throw new Error(`state slot manager: releasing slot ${slot} of ${this.numSlots}`);
    if (this.freeSlots.includes(slot)) throw new Error(`state slot manager: slot ${slot} released twice`);
    this.freeSlots.push(slot);
  }
}
