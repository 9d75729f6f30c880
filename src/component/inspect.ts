import { inspectModule, type ModuleInspection } from '../inspect/inspect.ts';
import { parseModule } from '../parse/module.ts';
import { parseComponent, type ComponentExport } from './binary.ts';
import { isPreview1Adapter } from './run.ts';

/** What `wiz inspect` shows of a component: its top-level exports, and each core module with what it holds. */
export interface ComponentInspection {
  size: number;
  /** Components nested in it, at any depth. */
  nestedComponents: number;
  exports: Pick<ComponentExport, 'name' | 'sort'>[];
  modules: {
    ordinal: number;
    /** 0 for the outermost component. */
    depth: number;
    /** What wiz does with it: snapshot its state, or keep the WASI preview1 adapter as built. */
    role: 'snapshot' | 'adapter';
    inspection: ModuleInspection;
  }[];
}

export function inspectComponent(bytes: Uint8Array): ComponentInspection {
  const ctx = parseComponent(bytes);
  let nested = 0;
  const count = (c: typeof ctx) => c.sections.forEach((s) => s.component && (nested++, count(s.component)));
  count(ctx);
  return {
    size: bytes.length,
    nestedComponents: nested,
    exports: ctx.exports.map(({ name, sort }) => ({ name, sort })),
    modules: ctx.modules.map((m) => ({
      ordinal: m.ordinal,
      depth: m.depth,
      role: isPreview1Adapter(parseModule(m.bytes)) ? 'adapter' : 'snapshot',
      inspection: inspectModule(m.bytes),
    })),
  };
}
