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

/**
 * Stable warning codes, passed as the second argument of `onWarning`: a caller (a build tool, `--json`) can
 * branch on them; the message is for people.
 */
export type WizWarningCode =
  | 'rename-missing' // a rename whose source the module does not export
  | 'legacy-init-func' // no `wizer-initialize`: `wizer.initialize` was run instead
  | 'no-provenance' // provenance not recorded (no WebCrypto in this context)
  | 'random-read' // init read random bytes: every instance starts with the same ones
  | 'clock-read' // init read a clock: the time is baked into the snapshot
  | 'flag-ignored' // a flag accepted for compatibility that has no effect
  | 'relaxed-simd' // the module uses relaxed SIMD, whose results may differ between machines
  | 'init-func-kept' // a component keeps exporting its init function: wiz could not remove the export
  | 'host-resources'; // a component's init left host resources open: their handles mean nothing in the snapshot

/** Receives one-line warnings and their stable codes. */
export type WarningHandler = (message: string, code: WizWarningCode) => void;

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
