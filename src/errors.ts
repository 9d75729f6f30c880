/** Stable error codes: a caller can branch on them, the CLI prints the message alone. */
export type WizErrorCode =
  | 'malformed' // not a wasm binary, truncated, or structurally broken
  | 'invalid' // the engine's validator rejects the module
  | 'component' // a component was given where a core module is expected
  | 'unsupported' // a feature or construct wiz or the running engine cannot handle
  | 'instrumentation' // `__wizer_` names already present, or (re-parsing) forged instrumentation
  | 'init-func' // the init function is missing, not a function, or of the wrong type
  | 'trap' // the start function or the init function trapped
  | 'import-call' // an import without a host implementation was called during init
  | 'timeout' // the init function did not finish in the time allowed
  | 'journal' // a journaled worker cannot go on: its lease is lost, or what it held cannot be restored
  | 'usage'; // bad options

/** The one error class of wiz: a code to branch on and a one-line message a user can act on. */
export class WizError extends Error {
  readonly code: WizErrorCode;
  constructor(code: WizErrorCode, message: string) {
    // One line, whatever names it quotes: control characters are shown escaped.
    super(message.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1)));
    this.name = 'WizError';
    this.code = code;
  }
}

export function isWizError(e: unknown): e is WizError {
  return e instanceof WizError;
}
