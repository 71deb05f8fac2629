import { execFile, spawn, type ChildProcess } from 'node:child_process';

/** What a lab command printed; the lab never goes through a shell. */
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

export type LabLog = (line: string) => void;

const COMMAND_TIMEOUT_MS = 15_000;

/** Runs argv (no shell) with a deadline; rejects with the argv and stderr in the message. */
export function exec(argv: readonly string[], log?: LabLog): Promise<ExecResult> {
  const [file, ...args] = argv;
  log?.(`+ ${argv.join(' ')}`);
  return new Promise((resolve, reject) => {
    execFile(file!, args, { env: { ...process.env, LC_ALL: 'C' }, timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      // What it printed travels with the error: ping exits 1 when some replies were lost.
      if (error) reject(Object.assign(new Error(`lab command failed: ${argv.join(' ')}: ${stderr.trim() || error.message}`), { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** The last lines a long-running process printed, kept for failure reports. */
export class OutputTail {
  private lines: string[] = [];
  constructor(private readonly max = 400) {}
  push(chunk: string): void {
    for (const line of chunk.split('\n')) if (line) this.lines.push(line);
    if (this.lines.length > this.max) this.lines = this.lines.slice(-this.max);
  }
  text(): string {
    return this.lines.join('\n');
  }
  all(): readonly string[] {
    return this.lines;
  }
}

/** A process the lab started and will stop, by PID, at teardown. */
export interface LabProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly output: OutputTail;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
}

export function spawnTracked(name: string, argv: readonly string[], log?: LabLog): LabProcess {
  const [file, ...args] = argv;
  log?.(`+ ${argv.join(' ')} &`);
  const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  if (child.pid === undefined) throw new Error(`lab could not start ${argv.join(' ')}`);
  const output = new OutputTail();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { name, child, pid: child.pid, output, exited };
}

/**
 * Polls `probe` until it returns a value other than undefined, every
 * `intervalMs`, for at most `timeoutMs`; then throws naming `what`.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, options: { timeoutMs: number; intervalMs?: number }): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (let attempt = 0; attempt < 100_000; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
  throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
}
