import { WizError } from '../errors.ts';
import { functionType } from '../parse/module.ts';
import type { ModuleContext, ValType } from '../parse/types.ts';

/** A call to make on a live instance: an export and its arguments, converted to the parameter types. */
export interface Invocation {
  name: string;
  args: (number | bigint)[];
  params: ValType[];
  results: ValType[];
}

/**
 * Reads `name` or `name(arg, …)` (numbers in decimal or 0x hex; `nan`, `inf`, `-inf` for floats) against the
 * export's function type.
 */
export function parseInvocation(ctx: ModuleContext, spec: string): Invocation {
  const open = spec.indexOf('(');
  const hasArgs = open > 0 && spec.endsWith(')');
  const name = hasArgs ? spec.slice(0, open).trim() : spec;
  const texts = hasArgs ? spec.slice(open + 1, -1).split(',').map((a) => a.trim()).filter((a) => a !== '') : [];
  const exp = ctx.exports.find((e) => e.name === name);
  if (!exp || exp.kind !== 'func') throw new WizError('usage', `--invoke ${spec}: the module exports no function "${name}"`);
  const type = functionType(ctx, exp.index);
  if (type?.kind !== 'func') throw new WizError('usage', `--invoke ${spec}: "${name}" has no function type`);
  if (texts.length !== type.params.length) {
    throw new WizError('usage', `--invoke ${spec}: "${name}" takes ${type.params.length} argument${type.params.length === 1 ? '' : 's'} (${type.params.join(', ') || 'none'}), not ${texts.length}`);
  }
  const args = texts.map((text, i) => parseValue(text, type.params[i]!, `--invoke ${spec}`));
  return { name, args, params: type.params, results: type.results };
}

/** A value of `type` from text as `--invoke` reads it; `what` starts the error message (e.g. `--answer 7`). */
export function parseValue(text: string, type: ValType, what: string): number | bigint {
  const bad = (): never => {
    throw new WizError('usage', `${what}: "${text}" is not a valid ${type} ${what.startsWith('--invoke') ? 'argument' : 'value'}`);
  };
  switch (type) {
    case 'i32': {
      const v = /^[+-]?(0x[0-9a-f]+|[0-9]+)$/i.test(text) ? (text.startsWith('-') ? -1 : 1) * Number(text.replace(/^[+-]/, '')) : NaN;
      if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 32) bad();
      return v | 0;
    }
    case 'i64': {
      if (!/^[+-]?(0x[0-9a-f]+|[0-9]+)$/i.test(text)) bad();
      const negative = text.startsWith('-');
      const magnitude = BigInt(text.replace(/^[+-]/, ''));
      const v = negative ? -magnitude : magnitude;
      if (v < -(2n ** 63n) || v >= 2n ** 64n) bad();
      return BigInt.asIntN(64, v);
    }
    case 'f32':
    case 'f64': {
      const special: Record<string, number> = { nan: NaN, inf: Infinity, '+inf': Infinity, '-inf': -Infinity };
      const v = special[text.toLowerCase()] ?? (text.trim() === '' ? NaN : Number(text));
      if (Number.isNaN(v) && text.toLowerCase() !== 'nan') bad();
      return v;
    }
    default:
      throw new WizError('usage', `${what}: cannot pass a ${type} value from the command line`);
  }
}

/** A value as `--invoke` prints it (and reads it back with `parseValue`). */
export const showValue = (v: unknown): string => (Object.is(v, -0) ? '-0' : String(v));
const show = showValue;

/** `name(args) = result`, one line, for showing what a call returned. */
export function formatInvocation(call: { name: string; args: readonly unknown[]; results: readonly ValType[] }, result: unknown): string {
  const head = `${call.name}(${call.args.map(show).join(', ')})`;
  if (call.results.length === 0) return head;
  return `${head} = ${Array.isArray(result) ? result.map(show).join(', ') : show(result)}`;
}
