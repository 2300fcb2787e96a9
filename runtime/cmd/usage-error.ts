/** A command line the command cannot run: its usage is printed and the process exits 2. */
export class UsageError extends Error {}
