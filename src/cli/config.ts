/**
 * Settings from outside the command line: the pure part. A config file is
 * `key = value` lines (a key is a long flag name without `--`; `#` starts a
 * comment line), and every flag may also come from the environment as
 * SNAKEBITE_<FLAG> (upper case, `-` as `_`). Precedence, highest first:
 * command-line flags, environment, config file, built-in defaults.
 */

/** Where one setting came from, for messages that name the place to fix. */
export type SettingSource =
  | { readonly kind: 'flag' }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'file'; readonly path: string; readonly line: number }
  | { readonly kind: 'default' };

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly default?: string | boolean;
}

export type ConfigProblem = { readonly where: string; readonly key: string; readonly reason: string };

export interface ConfigEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

/** Parses a config file's text; every line that is not blank, a comment or `key = value` is a problem. */
export function parseConfigText(text: string, path: string): { entries: ConfigEntry[]; problems: ConfigProblem[] } {
  const entries: ConfigEntry[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const match = /^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(trimmed);
    if (!match) {
      problems.push({ where: `${path}:${line}`, key: trimmed.slice(0, 40), reason: 'expected "key = value"' });
      return;
    }
    const key = match[1]!.toLowerCase();
    let value = match[2]!;
    const quoted = /^"(.*)"$/.exec(value);
    if (quoted) value = quoted[1]!;
    const before = seen.get(key);
    if (before !== undefined) {
      problems.push({ where: `${path}:${line}`, key, reason: `set twice (first on line ${before})` });
      return;
    }
    seen.set(key, line);
    entries.push({ key, value, line });
  });
  return { entries, problems };
}

/** Variables that are not flags: the config file's path, and where the client keeps its state. */
export const NOT_FLAGS: ReadonlySet<string> = new Set(['SNAKEBITE_CONFIG', 'SNAKEBITE_STATE_DIR']);

/** `relay-after` → `SNAKEBITE_RELAY_AFTER`. */
export function envName(flag: string): string {
  return `SNAKEBITE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** A boolean setting's text: true/false, yes/no, on/off, 1/0; undefined when it is none of these. */
export function parseBooleanText(text: string): boolean | undefined {
  const lower = text.trim().toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  return undefined;
}

export interface LayerInput {
  readonly spec: Readonly<Record<string, OptionSpec>>;
  /** Values given as flags (already parsed, defaults not applied). */
  readonly flags: Readonly<Record<string, string | boolean | undefined>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The config file's entries, when one was read. */
  readonly file?: { readonly path: string; readonly entries: readonly ConfigEntry[] };
  /** Flag names of every command: an environment variable naming one of another command is not ours to judge. */
  readonly allFlags: ReadonlySet<string>;
  /** Flags that settings outside the command line may not give (help, config). */
  readonly flagOnly: ReadonlySet<string>;
}

export interface Layered {
  readonly values: Record<string, string | boolean | undefined>;
  readonly sources: Record<string, SettingSource>;
  readonly problems: ConfigProblem[];
}

/** Merges flags > environment > file > defaults; unknown keys and bad booleans are problems, never ignored. */
export function layerSettings(input: LayerInput): Layered {
  const values: Record<string, string | boolean | undefined> = {};
  const sources: Record<string, SettingSource> = {};
  const problems: ConfigProblem[] = [];
  const settable = (key: string) => key in input.spec && !input.flagOnly.has(key);
  const convert = (key: string, text: string, where: string): string | boolean | undefined => {
    if (input.spec[key]!.type === 'string') {
      if (text === '') problems.push({ where, key, reason: 'empty value' });
      return text;
    }
    const value = parseBooleanText(text);
    if (value === undefined) problems.push({ where, key, reason: `expected true or false, got "${text}"` });
    return value;
  };

  for (const [key, spec] of Object.entries(input.spec)) {
    if (spec.default !== undefined) {
      values[key] = spec.default;
      sources[key] = { kind: 'default' };
    }
  }
  for (const entry of input.file?.entries ?? []) {
    const where = `${input.file!.path}:${entry.line}`;
    if (!settable(entry.key)) {
      problems.push({ where, key: entry.key, reason: input.flagOnly.has(entry.key) ? 'only allowed on the command line' : `unknown key; known: ${Object.keys(input.spec).filter(settable).join(', ')}` });
      continue;
    }
    values[entry.key] = convert(entry.key, entry.value, where);
    sources[entry.key] = { kind: 'file', path: input.file!.path, line: entry.line };
  }
  const byEnvName = new Map([...input.allFlags].map((flag) => [envName(flag), flag]));
  for (const [name, text] of Object.entries(input.env)) {
    if (!name.startsWith('SNAKEBITE_') || text === undefined || NOT_FLAGS.has(name)) continue;
    const key = byEnvName.get(name);
    if (key === undefined) {
      problems.push({ where: 'environment', key: name, reason: 'names no snakebite flag' });
      continue;
    }
    if (!settable(key)) continue; // a setting of another command
    values[key] = convert(key, text, `environment ${name}`);
    sources[key] = { kind: 'env', name };
  }
  for (const [key, value] of Object.entries(input.flags)) {
    if (value === undefined) continue;
    values[key] = value;
    sources[key] = { kind: 'flag' };
  }
  return { values, sources, problems };
}

/** How a setting's source reads in a message: `SNAKEBITE_WAIT`, `/etc/snakebite/client.conf:3 (wait)`. */
export function describeSource(key: string, source: SettingSource | undefined): string | undefined {
  if (!source) return undefined;
  switch (source.kind) {
    case 'env':
      return `from the environment (${source.name})`;
    case 'file':
      return `from ${source.path}:${source.line} (${key})`;
    case 'flag':
    case 'default':
      return undefined;
  }
}
