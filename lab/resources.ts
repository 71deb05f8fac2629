import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where each lab run writes what it made, so `npm run lab:clean` can undo a run that was killed. */
export const RECORD_DIR = '/run/snakebite-lab';

/** Everything one lab run created; teardown undoes exactly this and nothing else. */
export interface LabRecord {
  readonly id: string;
  readonly ownerPid: number;
  namespaces: string[];
  /** WireGuard interface names: their UAPI sockets live in /var/run/wireguard/ for the whole machine. */
  wgInterfaces: string[];
  /** PIDs the run started, with the command line they were started with. */
  processes: { pid: number; argv: string[] }[];
  tmpDirs: string[];
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Running, and not a zombie (our own children stay zombies until the event loop reaps them). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** True when `pid` still runs the program we started (PIDs get reused): the same command line. */
function stillOurs(pid: number, argv: readonly string[]): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part.length > 0);
    // `ip netns exec NS prog ...` becomes `prog ...` after exec: compare the tail.
    const same = (line: readonly string[]) => {
      const tail = argv.slice(argv.length - line.length);
      return line.length > 0 && tail.length === line.length && tail.every((part, i) => part === line[i]);
    };
    // A script run through its #! line gets its interpreter in front (`node /usr/bin/snakebite ...`).
    return same(cmdline) || same(cmdline.slice(1));
  } catch {
    return false;
  }
}

/**
 * Undoes a record synchronously (so it also works from an 'exit' handler):
 * SIGTERM to our PIDs, SIGKILL after 2 s, then namespaces, sockets, temp dirs.
 */
export function teardownRecord(record: LabRecord, log?: (line: string) => void): void {
  const ours = record.processes.filter((p) => isAlive(p.pid) && stillOurs(p.pid, p.argv));
  for (const p of ours) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; i < 40 && ours.some((p) => isAlive(p.pid)); i++) sleepSync(50);
  for (const p of ours) {
    if (isAlive(p.pid)) {
      log?.(`lab: pid ${p.pid} ignored SIGTERM, sending SIGKILL`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const ns of [...record.namespaces].reverse()) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      /* already gone */
    }
  }
  for (const name of record.wgInterfaces) {
    rmSync(`/var/run/wireguard/${name}.sock`, { force: true });
    // A client daemon killed with the lab leaves its status file behind.
    rmSync(`/run/snakebite/${name}.json`, { force: true });
  }
  for (const dir of record.tmpDirs) rmSync(dir, { recursive: true, force: true });
  rmSync(join(RECORD_DIR, `${record.id}.json`), { force: true });
}

/** Tracks one run's resources, persists them as they are made, and tears them down once. */
export class LabResources {
  readonly record: LabRecord;
  private tornDown = false;
  private readonly onExit = () => this.teardown();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.teardown();
    process.kill(process.pid, signal);
  };

  constructor(id: string, private readonly log?: (line: string) => void) {
    this.record = { id, ownerPid: process.pid, namespaces: [], wgInterfaces: [], processes: [], tmpDirs: [] };
    mkdirSync(RECORD_DIR, { recursive: true });
    this.save();
    process.once('exit', this.onExit);
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  private save(): void {
    writeFileSync(join(RECORD_DIR, `${this.record.id}.json`), JSON.stringify(this.record));
  }

  addNamespace(name: string): void {
    this.record.namespaces.push(name);
    this.save();
  }
  addWgInterface(name: string): void {
    this.record.wgInterfaces.push(name);
    this.save();
  }
  addProcess(pid: number, argv: readonly string[]): void {
    this.record.processes.push({ pid, argv: [...argv] });
    this.save();
  }
  addTmpDir(dir: string): void {
    this.record.tmpDirs.push(dir);
    this.save();
  }

  teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    process.removeListener('exit', this.onExit);
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    teardownRecord(this.record, this.log);
  }
}

/** Records of runs whose owner process is gone: what `npm run lab:clean` undoes. */
export function orphanedRecords(): LabRecord[] {
  if (!existsSync(RECORD_DIR)) return [];
  const records: LabRecord[] = [];
  for (const file of readdirSync(RECORD_DIR)) {
    if (!file.endsWith('.json')) continue;
    try {
      const record = JSON.parse(readFileSync(join(RECORD_DIR, file), 'utf8')) as LabRecord;
      if (!isAlive(record.ownerPid)) records.push(record);
    } catch {
      /* a half-written record: leave it */
    }
  }
  return records;
}
