// wiz's own options from a config file: the only way to set them when another tool builds the command line
// (a build that runs `wizer` through the @bytecodealliance/wizer package, or ComponentizeJS's `--wizer-bin`).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CommanderError } from 'commander';

/** The keys a config file may set, and the type of each; a new option is one line here and one where it is used. */
const KEYS = {
  quiet: ['boolean'],
  deterministic: ['boolean'],
  /** true: the default cache directory; a string: that directory (relative to the config file's folder). */
  cache: ['boolean', 'string'],
} as const;

type Types = { boolean: boolean; string: string };

/** What a config file sets; a flag given on the command line wins over it. */
export type WizConfig = { -readonly [K in keyof typeof KEYS]?: Types[(typeof KEYS)[K][number]] };

export const CONFIG_FILE = 'wiz.config.json';

/** A config file that cannot be used: exit code 2, as for a usage error. */
const refuse = (message: string) => new CommanderError(2, 'wiz.usage', message);

/**
 * The config nearest to `dir`: in each folder from `dir` up to the root, `wiz.config.json`, else the `wiz` key
 * of `package.json`. Nothing found is an empty config.
 */
export function findConfig(dir: string = process.cwd()): { path?: string; config: WizConfig } {
  for (let at = resolve(dir); ; at = dirname(at)) {
    const file = join(at, CONFIG_FILE);
    if (existsSync(file)) return { path: file, config: checkConfig(readJson(file), file) };
    const pkg = join(at, 'package.json');
    if (existsSync(pkg)) {
      const json = readJson(pkg, true); // a package.json that is not ours to judge
      if (isObject(json) && 'wiz' in json) return { path: pkg, config: checkConfig(json.wiz, `${pkg} ("wiz" key)`) };
    }
    if (dirname(at) === at) return { config: {} };
  }
}

/** Checks that `value` is an object of known keys with values of the right type. */
export function checkConfig(value: unknown, where: string): WizConfig {
  if (!isObject(value)) throw refuse(`${where}: the config must be a JSON object, such as {"quiet": true}`);
  const known = Object.keys(KEYS);
  for (const [key, v] of Object.entries(value)) {
    if (!Object.hasOwn(KEYS, key)) throw refuse(`${where}: unknown key "${key}" (known: ${known.join(', ')})`);
    const types: readonly string[] = KEYS[key as keyof typeof KEYS];
    if (!types.includes(typeof v)) throw refuse(`${where}: "${key}" must be a ${types.join(' or a ')}, not ${JSON.stringify(v)}`);
  }
  return value as WizConfig;
}

function readJson(file: string, lenient = false): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    if (lenient) return undefined;
    throw refuse(`${file}: cannot read it as JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
