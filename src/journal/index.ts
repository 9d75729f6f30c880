// The journal of host calls: one import for the package index.
export { journalImports, memoryLog, formatCall, type Journal, type JournalOptions, type JournalLog, type ObservedCall } from './journal.ts';
export { encodeEntry, decodeEntry, type JournalEntry, type JournalValue, type JournalResult, type MemoryWrite } from './entry.ts';
export { OpenFiles, type OpenFile } from './files.ts';
export { WASI_CALLS, WASI_EFFECTS, wasiCallClass, wasiWrites, wasiBefore, type WasiCallClass, type GuestMemory, type Regions, type SizesOf } from './wasi.ts';
