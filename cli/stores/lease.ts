// Apart from the journal store, so that the command line can show it without loading SQLite at start-up.
/** How long a worker's lease lasts without a call, by default (ms). */
export const DEFAULT_LEASE_MS = 10_000;
