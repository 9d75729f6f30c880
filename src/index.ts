export { WizError, isWizError, type WizErrorCode, type WizWarningCode, type WarningHandler } from './errors.ts';
export { parseModule } from './parse/module.ts';
export type { ModuleContext, Section, Export, Import, DefinedGlobal, DefinedMemory, DataSegment, ValType } from './parse/types.ts';
export { instrument, type InstrumentedModule, type InstrumentedGlobal, type InstrumentedMemory } from './instrument/instrument.ts';
export {
  initialize, resolveInitFunc, compileModule, DEFAULT_INIT_FUNC, LEGACY_INIT_FUNC, type InitializeOptions,
} from './run/initialize.ts';
export {
  takeSnapshot, instanceReader, tableBaseline, KEPT_OBJECT, type Snapshot, type StateReader, type GlobalBits, type MemoryState,
  type TableBaseline, type TableState, type Ref,
} from './snapshot/state.ts';
export { snapshotSegments, MAX_DATA_SEGMENTS, MAX_MERGED_GAP, type NewSegment } from './snapshot/segments.ts';
export { rewrite, rewriteParts, parseRenames, type RewriteOptions } from './snapshot/rewrite.ts';
export { preinitialize, preinitializeParts, snapshot, snapshotParts, type PreinitializeOptions, type SnapshotOptions } from './preinitialize.ts';
export { parseInstrumented, type VerifiedInstrumentedModule } from './instrument/reparse.ts';
export { instantiate, type LiveInstance } from './run/initialize.ts';
export { readProvenance, PROVENANCE_SECTION, type Provenance } from './snapshot/provenance.ts';
export { parseInvocation, formatInvocation, type Invocation } from './run/invoke.ts';
export { inspectModule, decodeConstExpr, INIT_FUNCTION_NAMES, type ModuleInspection, type ConstValue, type GlobalInfo, type MemoryInfo, type TableInfo, type SectionInfo } from './inspect/inspect.ts';
export { asyncify, DEFAULT_STACK_SIZE, type AsyncifyOptions } from './durable/asyncify.ts';
export { DurableWorker, loadDurable, FORK_HOOK, type DurableModule, type LoadDurableOptions, type Outcome, type WorkerOptions, type WorkerJournal } from './durable/worker.ts';
export { captureImage, restoreWorker, materialize, checkImage, type CaptureOptions } from './durable/capture.ts';
export { IMAGE_FORMAT, DEFAULT_CHUNK_SIZE, sha256Hex, type StateImage, type ImageChunks, type ImageMemory, type ImageGlobal, type ImageTable, type SuspendedCall, type CallRecord, type JournalState } from './durable/image.ts';
export { readLayout, LAYOUT_SECTION, SUSPENDED_SECTION, HOST_SECTION, type DurableLayout } from './durable/layout.ts';
export { diffModules, diffImages, type StateDiff, type GlobalDiff, type MemoryDiff, type TableDiff, type DiffOptions } from './diff/diff.ts';
export { createImageStore, type ImageStore, type ImageStoreOptions, type StoreDriver, type SavedGeneration, type LoadedGeneration } from './durable/store.ts';
export { memoryDriver } from './durable/stores/memory.ts';
export { indexedDBDriver, type IndexedDBDriverOptions } from './durable/stores/indexeddb.ts';
export { journalImports, memoryLog, formatCall, encodeEntry, decodeEntry, WASI_CALLS, WASI_EFFECTS, wasiCallClass, type Journal, type JournalOptions, type JournalLog, type JournalEntry, type JournalValue, type JournalResult, type MemoryWrite, type WasiCallClass, type ObservedCall, OpenFiles, type OpenFile } from './journal/index.ts';
export { isComponent, parseComponent, type ComponentContext, type CoreModuleSection } from './component/binary.ts';
export {
  preinitializeComponent, preinitializeComponentParts, snapshotComponentParts, parseComponentCall,
  type ComponentPreinitializeOptions, type ComponentSnapshotOptions, type ComponentCall,
} from './component/preinitialize.ts';
export { instantiateComponent, type LiveComponent, type LiveModule, type ComponentRunOptions } from './component/run.ts';
export { inspectComponent, type ComponentInspection } from './component/inspect.ts';
