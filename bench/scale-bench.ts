/**
 * `npm run bench:scale [-- --peers 1000,10000,50000] [--quick] [--out FILE]`:
 * how the fang server and the client behave with many peers, beside the
 * seed's way (one `wg show` per request, one `wg set` per peer). Prints JSON
 * with the machine noted. Needs root: it makes a network namespace.
 *
 * ```
 *  namespace sbs<id> (made here, deleted in finally)
 *  ┌──────────────────────────────────────────────────────────────────────┐
 *  │ lo: 10.77.0.1 + `local 10.77.0.0/16` (any address of it is ours)     │
 *  │                                                                      │
 *  │  load (this process)  ── HTTP from 10.77.x.y, one /32 per peer ──▶   │
 *  │  server child: startFangServer(WgCommandDriver(fake `wg`))           │
 *  │      fake `wg show` = cat of an N-peer dump written by this process  │
 *  │  wireguard-go sbs<id>wg: the client's interface for real `wg set`    │
 *  └──────────────────────────────────────────────────────────────────────┘
 * ```
 *
 * The server identifies askers by source address, so load connections bind
 * to peer i's own overlay address. Roles: the default role builds the
 * namespace and runs `--role inner` inside it; the inner role forks
 * `--role server` (the fang, measured apart from the load) for each size.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createServer } from 'node:http';
import { LabResources } from '../lab/resources';
import { generateKeyPair } from '../lab/keys';
import { parseIp } from '../src/ip/address';
import { createLogger } from '../src/log/logger';
import { parsePeerList } from '../src/peer-list/parse';
import { planPeerChanges, type Plan } from '../src/plan/plan';
import * as dumpParser from '../src/wireguard/dump-parser';
import { parseDump } from '../src/wireguard/dump-parser';
import { addconfText, runCommand, WgCommandDriver, wgSetArguments } from '../src/wireguard/wg-command-driver';
import { startFangServer } from '../src/fang/server';
import type { DeviceState } from '../src/wireguard/device-state';

// ─── options ────────────────────────────────────────────────────────────────

interface BenchOptions {
  peers: number[];
  waiters: number[];
  concurrency: number[];
  /** Per load point, milliseconds. */
  durationMs: number;
  /** Changed peers in the client's "some changed" sync. */
  changed: number;
  /** Peers set one `wg set` each, the seed's way (the rest extrapolated). */
  seedSetSample: number;
  quick: boolean;
  /** Measure only the fang (`server`) or only the client (`client`). */
  only?: 'server' | 'client';
}

function parseOptions(argv: readonly string[]): { options: BenchOptions; out?: string } {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i === -1 ? undefined : argv[i + 1];
  };
  const quick = argv.includes('--quick');
  const list = (text: string | undefined, fallback: number[]) => (text ? text.split(',').map((n) => Number(n)) : fallback);
  const options: BenchOptions = quick
    ? { peers: list(get('--peers'), [200]), waiters: [200], concurrency: [1, 8], durationMs: 300, changed: 50, seedSetSample: 20, quick }
    : {
        peers: list(get('--peers'), [1000, 10_000, 50_000]),
        waiters: list(get('--waiters'), [1000, 10_000]),
        concurrency: list(get('--concurrency'), [1, 32, 256]),
        durationMs: Number(get('--duration-ms') ?? 2000),
        changed: 1000,
        seedSetSample: 1000,
        quick,
      };
  const only = get('--only');
  if (only === 'server' || only === 'client') options.only = only;
  for (const n of [...options.peers, ...options.waiters, ...options.concurrency]) {
    if (!Number.isInteger(n) || n < 1 || n > 60_000) throw new Error(`bench:scale: sizes are integers from 1 to 60000, got ${n}`);
  }
  const out = get('--out');
  return out ? { options, out } : { options };
}

// ─── the fake interface ─────────────────────────────────────────────────────

const OVERLAY_BASE = (10 << 24) | (77 << 16); // 10.77.0.0/16
const SERVER_ADDRESS = '10.77.0.1';
const SERVER_PORT = 51821;

/** Peer i's overlay address: 10.77.0.2 upwards. */
function peerAddress(i: number): string {
  const v = OVERLAY_BASE + 2 + i;
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** A valid, distinct WireGuard key per peer (not a real curve point; nothing here does crypto with it). */
function peerKey(i: number, salt = 0x5b): string {
  const bytes = Buffer.alloc(32, salt);
  bytes.writeUInt32BE(i, 0);
  return bytes.toString('base64');
}

function peerEndpoint(i: number, moved = 0): string {
  return `198.51.100.${(i % 250) + 1}:${10_000 + ((i * 7 + moved * 13) % 50_000)}`;
}

/** `wg show IF dump` of a fang with `n` peers; `moved` changes peer endpoints for the change test. */
function fangDump(n: number, moved: ReadonlyMap<number, number> = new Map()): string {
  const fangKey = peerKey(0xffffff, 0x11);
  const lines = [`${peerKey(0xfffffe, 0x22)}\t${fangKey}\t51820\toff`];
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < n; i++) {
    lines.push(`${peerKey(i)}\t(none)\t${peerEndpoint(i, moved.get(i) ?? 0)}\t${peerAddress(i)}/32\t${now - (i % 120)}\t${i * 1000}\t${i * 2000}\toff`);
  }
  return `${lines.join('\n')}\n`;
}

const FAKE_WG = `#!/bin/sh
# A fake wg for bench:scale: "show" prints the dump file, anything else succeeds.
case "$1" in
  show) exec cat "$SB_FAKE_DUMP" ;;
  *) exit 0 ;;
esac
`;

// ─── statistics ─────────────────────────────────────────────────────────────

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function median(values: readonly number[]): number | null {
  return percentile([...values].sort((a, b) => a - b), 50);
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ─── a minimal HTTP/1.1 client: one connection per peer, bound to its address ───

interface Reply {
  status: number;
  bytes: number;
  body?: Buffer;
}

class Conn {
  private chunks: Buffer[] = [];
  private received = 0;
  private need = -1;
  private status = 0;
  private keepBody = false;
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => {
      this.closed = true;
      this.fail(new Error('connection closed'));
    });
  }

  static open(localAddress: string, timeoutMs = 10_000): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: SERVER_ADDRESS, port: SERVER_PORT, localAddress, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect from ${localAddress} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new Conn(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  get(path: string, keepBody = false): Promise<Reply> {
    if (this.pending) throw new Error('bench bug: one request at a time');
    if (this.closed) return Promise.reject(new Error('connection closed'));
    this.chunks = [];
    this.received = 0;
    this.need = -1;
    this.keepBody = keepBody;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(`GET ${path} HTTP/1.1\r\nhost: ${SERVER_ADDRESS}\r\naccept: application/json\r\n\r\n`);
    });
  }

  private onData(chunk: Buffer): void {
    if (!this.pending) return;
    this.received += chunk.length;
    if (this.need === -1 || this.keepBody) this.chunks.push(chunk);
    if (this.need === -1) {
      const head = Buffer.concat(this.chunks);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const text = head.subarray(0, end).toString('latin1');
      this.status = Number(text.slice(9, 12));
      const length = /\r\ncontent-length: *(\d+)/i.exec(text);
      this.need = end + 4 + (length ? Number(length[1]) : 0);
      this.chunks = this.keepBody ? [head] : [];
    }
    if (this.received >= this.need) {
      const pending = this.pending;
      this.pending = undefined;
      const reply: Reply = { status: this.status, bytes: this.need };
      if (this.keepBody) {
        const all = Buffer.concat(this.chunks);
        reply.body = all.subarray(all.indexOf('\r\n\r\n') + 4, this.need);
      }
      pending.resolve(reply);
    }
  }

  private fail(e: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(e);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

async function openMany(first: number, count: number, batch = 250): Promise<Conn[]> {
  const conns: Conn[] = [];
  for (let start = 0; start < count; start += batch) {
    const part = await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, k) => Conn.open(peerAddress(first + start + k))));
    conns.push(...part);
  }
  return conns;
}

interface LoadResult {
  concurrency: number;
  requests: number;
  perSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  /** Requests still unanswered `graceMs` after the run ended, abandoned. */
  abandoned: number;
  meanBytes: number | null;
  /** Server CPU over the run, % of one core. */
  serverCpuPercent?: number;
  /** Server CPU time per answered request: what a request costs, however busy the machine. */
  serverCpuMsPerRequest?: number | null;
}

/** Closed loop: `concurrency` peers, each asking again as soon as answered, for `durationMs`. */
async function runLoad(concurrency: number, path: () => string, durationMs: number, graceMs: number, server?: ServerChild): Promise<LoadResult> {
  const conns = await openMany(0, concurrency);
  const latencies: number[] = [];
  let errors = 0;
  let abandoned = 0;
  let bytes = 0;
  const cpuBefore = server ? await server.stats() : undefined;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    conns.map(async (conn) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), Math.max(0, deadline + graceMs - t0));
        });
        try {
          const reply = await Promise.race([conn.get(path()), late]);
          if (reply === 'late') {
            abandoned++;
            conn.close();
            return;
          }
          if (reply.status === 200) {
            latencies.push(performance.now() - t0);
            bytes += reply.bytes;
          } else errors++;
        } catch {
          errors++;
          return;
        } finally {
          clearTimeout(timer);
        }
      }
    }),
  );
  const elapsed = performance.now() - started;
  const cpuAfter = server ? await server.stats() : undefined;
  for (const conn of conns) conn.close();
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    requests: latencies.length,
    perSecond: round((latencies.length / elapsed) * 1000, 0),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    abandoned,
    meanBytes: latencies.length ? Math.round(bytes / latencies.length) : null,
    ...(cpuBefore && cpuAfter
      ? {
          serverCpuPercent: cpuPercent(cpuBefore, cpuAfter),
          serverCpuMsPerRequest: latencies.length ? round((cpuAfter.cpuMicros - cpuBefore.cpuMicros) / 1000 / latencies.length, 3) : null,
        }
      : {}),
  };
}

// ─── the server child ───────────────────────────────────────────────────────

interface ServerStats {
  rssMB: number;
  heapUsedMB: number;
  peakRssMB: number;
  cpuMicros: number;
  at: number;
  reads: number;
  waiting: number;
  errors: Record<string, number>;
}

/** The waiting server's own CPU share (polling), to take out of a fan-out's CPU time. */
function idleCpuPercentOf(a: ServerStats, b: ServerStats): number {
  return ((b.cpuMicros - a.cpuMicros) / 1000 / (b.at - a.at)) * 100;
}

function cpuPercent(a: ServerStats, b: ServerStats): number {
  return round(((b.cpuMicros - a.cpuMicros) / 1000 / (b.at - a.at)) * 100, 1);
}

class ServerChild {
  private nextId = 1;
  private readonly waiting = new Map<number, (s: ServerStats) => void>();
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id: number; stats: ServerStats }) => {
      this.waiting.get(m.id)?.(m.stats);
      this.waiting.delete(m.id);
    });
  }

  static async start(mode: 'snakebite' | 'seed', env: NodeJS.ProcessEnv): Promise<ServerChild> {
    const child = fork(__filename, ['--role', 'server', mode], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server child did not start within 20 s')), 20_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`the server child exited with ${code}`)));
    });
    return new ServerChild(child);
  }

  stats(): Promise<ServerStats> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server child did not answer within 120 s')), 120_000);
      this.waiting.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.child.send({ id });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** `--role server snakebite|seed`: the fang, in its own process so its memory and CPU are its own. */
async function serverRole(mode: string): Promise<void> {
  const fakeWg = process.env.SB_FAKE_WG!;
  let reads = 0;
  let waiting = () => 0;
  const errorsByEvent = new Map<string, number>();
  if (mode === 'seed') {
    // The seed's server: every request runs `wg show` and prints key and endpoint lines.
    const server = createServer((request, response) => {
      request.resume();
      reads++;
      runCommand(fakeWg, ['show', 'sbfang', 'dump']).then(
        ({ stdout }) => {
          const body = stdout
            .split('\n')
            .slice(1)
            .filter((line) => line)
            .map((line) => {
              const [key, , endpoint] = line.split('\t');
              return `${key} ${endpoint}\n`;
            })
            .join('');
          response.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
        },
        () => response.writeHead(503).end(),
      );
    });
    server.maxConnections = 60_000;
    await new Promise<void>((resolve) => server.listen({ host: SERVER_ADDRESS, port: SERVER_PORT }, resolve));
  } else {
    const driver = new WgCommandDriver('sbfang', runCommand, fakeWg);
    // Errors are counted, not printed: under overload there are thousands.
    const logger = createLogger({ level: 'error', format: 'json', clock: () => new Date(), write: (line) => {
      const event = (JSON.parse(line) as { event: string }).event;
      errorsByEvent.set(event, (errorsByEvent.get(event) ?? 0) + 1);
    } });
    const fang = await startFangServer({ driver, listenAddress: parseIp(SERVER_ADDRESS)!, port: SERVER_PORT, logger });
    waiting = () => fang.watch.waiting;
    Object.defineProperty(globalThis, '__sbView', { value: fang.view });
  }
  process.on('message', (m: { id: number }) => {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const view = (globalThis as { __sbView?: { reads: number } }).__sbView;
    const stats: ServerStats = {
      rssMB: round(memory.rss / 2 ** 20, 1),
      heapUsedMB: round(memory.heapUsed / 2 ** 20, 1),
      peakRssMB: round(process.resourceUsage().maxRSS / 1024, 1),
      cpuMicros: cpu.user + cpu.system,
      at: performance.now() + performance.timeOrigin,
      reads: view ? view.reads : reads,
      waiting: waiting(),
      errors: Object.fromEntries(errorsByEvent),
    };
    process.send!({ id: m.id, stats });
  });
  process.on('SIGTERM', () => process.exit(0));
  // Never outlive the measuring process.
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
}

// ─── the measurements at one size ───────────────────────────────────────────

interface Paths {
  dumpFile: string;
  fakeWg: string;
  wgInterface: string;
  privateKeyFile: string;
}

function writeDump(paths: Paths, text: string): void {
  writeFileSync(`${paths.dumpFile}.new`, text);
  renameSync(`${paths.dumpFile}.new`, paths.dumpFile);
}

async function measureServer(mode: 'snakebite' | 'seed', n: number, options: BenchOptions, paths: Paths): Promise<Record<string, unknown>> {
  writeDump(paths, fangDump(n));
  const server = await ServerChild.start(mode, { ...process.env, SB_FAKE_WG: paths.fakeWg, SB_FAKE_DUMP: paths.dumpFile });
  const result: Record<string, unknown> = { mode };
  try {
    const grace = options.quick ? 5000 : 15_000;
    const started = await server.stats();
    await sleep(options.quick ? 200 : 2000);
    const idle = await server.stats();
    result.idle = { rssMB: idle.rssMB, heapUsedMB: idle.heapUsedMB, cpuPercent: cpuPercent(started, idle) };

    const fullPath = mode === 'seed' ? '/v1/peers.txt' : '/v1/peers';
    return await measureServerPhases(server, mode, n, options, paths, result, grace, fullPath);
  } catch (error) {
    result.error = (error as Error).message;
    return result;
  } finally {
    await server.stop();
  }
}

async function measureServerPhases(server: ServerChild, mode: 'snakebite' | 'seed', n: number, options: BenchOptions, paths: Paths, result: Record<string, unknown>, grace: number, fullPath: string): Promise<Record<string, unknown>> {
  {
    const probe = await Conn.open(peerAddress(0));
    const first = await probe.get(fullPath, true);
    probe.close();
    result.fullListBytes = first.bytes;
    let revision: number | undefined;
    if (mode === 'snakebite') {
      const body = JSON.parse(first.body!.toString('utf8')) as { revision?: number };
      revision = body.revision;
    }

    const concurrency = options.concurrency.filter((c) => c <= n);
    result.fullList = [];
    for (const c of concurrency) (result.fullList as LoadResult[]).push(await runLoad(c, () => fullPath, options.durationMs, grace, server));
    if (mode === 'seed' || revision === undefined) {
      result.delta = 'none: the seed serves the whole list every time';
      result.polled = await server.stats();
      return result;
    }
    result.delta = [];
    for (const c of concurrency) (result.delta as LoadResult[]).push(await runLoad(c, () => `/v1/peers?since=${revision}`, options.durationMs, grace, server));
    const polled = await server.stats();
    result.afterLoad = { rssMB: polled.rssMB, heapUsedMB: polled.heapUsedMB, peakRssMB: polled.peakRssMB };

    result.waiting = [];
    let moved = 0;
    for (const w of options.waiters.filter((count) => count <= n)) {
      (result.waiting as unknown[]).push(await measureWaiters(server, n, w, revision, ++moved, paths, options));
      // Later deltas start from the new revision.
      const again = await Conn.open(peerAddress(0));
      revision = (JSON.parse((await again.get('/v1/peers', true)).body!.toString('utf8')) as { revision: number }).revision;
      again.close();
    }
    const end = await server.stats();
    result.peakRssMB = end.peakRssMB;
    result.interfaceReads = end.reads;
    result.serverErrors = end.errors;
    return result;
  }
}

/** `w` peers wait on a long poll; one endpoint changes; how long until the last hears of it. */
async function measureWaiters(server: ServerChild, n: number, w: number, revision: number, moveRound: number, paths: Paths, options: BenchOptions): Promise<Record<string, unknown>> {
  const conns = await openMany(0, w);
  const done: number[] = [];
  let errors = 0;
  let changeAt = Infinity;
  const replies = conns.map((conn) =>
    conn.get(`/v1/peers?since=${revision}&wait=60`).then(
      (reply) => {
        if (reply.status === 200) done.push(performance.now());
        else errors++;
      },
      () => {
        errors++;
      },
    ),
  );
  try {
    let stats = await server.stats();
    for (let i = 0; i < 600 && stats.waiting < w; i++) {
      await sleep(100);
      stats = await server.stats();
    }
    const parked = stats.waiting;
    await sleep(options.quick ? 300 : 2000);
    const later = await server.stats();
    const early = done.length;
    // The change: the last peer's endpoint moves (it is not among the waiters unless w = n).
    writeDump(paths, fangDump(n, new Map([[n - 1, moveRound]])));
    changeAt = performance.now();
    const deadline = Date.now() + 30_000;
    while (done.length + errors < w && Date.now() < deadline) await sleep(5);
    const after = await server.stats();
    const times = done.filter((t) => t >= changeAt).map((t) => t - changeAt).sort((a, b) => a - b);
    // CPU from the change to the last answer: the read that saw it, the encoding and every reply.
    const fanOutCpuMs = round((after.cpuMicros - later.cpuMicros) / 1000 - (((after.at - later.at) / 1000) * idleCpuPercentOf(stats, later)) / 100);
    return {
      waiters: w,
      parked,
      answeredBeforeChange: early,
      notified: times.length,
      errors,
      firstMs: percentile(times, 0),
      p50Ms: percentile(times, 50),
      lastMs: times.length ? round(times[times.length - 1]!) : null,
      whileWaiting: { rssMB: later.rssMB, heapUsedMB: later.heapUsedMB, cpuPercent: cpuPercent(stats, later) },
      serverCpuMsChangeToLast: fanOutCpuMs,
      peakRssMB: after.peakRssMB,
    };
  } finally {
    for (const conn of conns) conn.close();
    await Promise.race([Promise.all(replies), sleep(2000)]);
  }
}

/** The interface read: fake `wg` (spawn + parse) and the parse alone. */
async function measureRead(n: number, paths: Paths): Promise<Record<string, unknown>> {
  writeDump(paths, fangDump(n));
  process.env.SB_FAKE_DUMP = paths.dumpFile;
  const driver = new WgCommandDriver('sbfang', runCommand, paths.fakeWg);
  const text = readFileSync(paths.dumpFile, 'utf8');
  const total: number[] = [];
  const parse: number[] = [];
  const parseCpu: number[] = [];
  const incremental: number[] = [];
  const incrementalCpu: number[] = [];
  const moved = fangDump(n, new Map([[Math.floor(n / 2), 1]]));
  for (let i = 0; i < 7; i++) {
    let t0 = performance.now();
    await driver.readDevice();
    total.push(performance.now() - t0);
    let c0 = process.cpuUsage();
    t0 = performance.now();
    parseDump('sbfang', text);
    parse.push(performance.now() - t0);
    parseCpu.push(cpuMsSince(c0));
    // What a watching fang pays per poll: the parser has seen the last dump, one peer moved.
    // (Older trees, measured for comparison, have no incremental parser.)
    const Incremental = (dumpParser as { DumpParser?: typeof dumpParser.DumpParser }).DumpParser;
    if (!Incremental) continue;
    const parser = new Incremental('sbfang');
    parser.parse(text);
    c0 = process.cpuUsage();
    t0 = performance.now();
    parser.parse(moved);
    incremental.push(performance.now() - t0);
    incrementalCpu.push(cpuMsSince(c0));
  }
  return {
    dumpBytes: text.length,
    fakeWgReadMs: median(total),
    parseMs: median(parse),
    parseCpuMs: median(parseCpu),
    incrementalParseMs: median(incremental) ?? 'no incremental parser in this tree',
    incrementalParseCpuMs: median(incrementalCpu),
  };
}

/** The client: parse the list, plan, apply on a real wireguard-go interface; then the seed's way. */
async function measureClient(n: number, options: BenchOptions, paths: Paths): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  const fangKey = peerKey(0xffffff, 0x11);
  // A fresh interface: only the fang peer.
  writeFileSync(join(paths.dumpFile, '..', 'client.conf'), `[Interface]\nPrivateKey = ${readFileSync(paths.privateKeyFile, 'utf8').trim()}\n\n[Peer]\nPublicKey = ${fangKey}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 10.77.0.0/16\n`);
  await runCommand('wg', ['setconf', paths.wgInterface, join(paths.dumpFile, '..', 'client.conf')], undefined, 600_000);
  const driver = new WgCommandDriver(paths.wgInterface);

  // What the fang serves, asked by a peer that is not in it.
  const body = {
    version: 1,
    fang: { publicKey: fangKey },
    you: { publicKey: peerKey(0xfffffd, 0x33), endpoint: '203.0.113.50:51820' },
    revision: 1,
    peers: Array.from({ length: n }, (_, i) => ({ publicKey: peerKey(i), endpoint: peerEndpoint(i), allowedIps: [`${peerAddress(i)}/32`], latestHandshake: 0 })),
  };
  const text = JSON.stringify(body);
  result.listBytes = text.length;
  const policy = { fangPublicKey: fangKey, serverAddress: parseIp(SERVER_ADDRESS)!, keepaliveSeconds: 25, flowingWithinSeconds: 180, localNetworks: [] };

  const sync = async (label: string, list: unknown): Promise<{ plan?: Plan; device?: DeviceState }> => {
    const row: Record<string, unknown> = {};
    result[label] = row;
    let t0 = performance.now();
    let parsed;
    try {
      parsed = parsePeerList(JSON.parse(JSON.stringify(list)) as unknown);
    } catch (error) {
      row.error = (error as Error).message;
      return {};
    }
    row.parseMs = round(performance.now() - t0);
    t0 = performance.now();
    const device = await driver.readDevice();
    row.readMs = round(performance.now() - t0);
    t0 = performance.now();
    const plan = planPeerChanges(device, parsed.list, policy, new Date());
    row.planMs = round(performance.now() - t0);
    row.changes = plan.changes.length;
    const args = wgSetArguments(paths.wgInterface, plan.changes);
    row.wgSetArgs = args.length;
    row.wgSetBytes = args.reduce((sum, a) => sum + Buffer.byteLength(a) + 1, 0);
    t0 = performance.now();
    try {
      await driver.applyPeerChanges(plan.changes);
      row.applyMs = round(performance.now() - t0);
    } catch (error) {
      row.applyError = (error as Error).message.slice(-300);
    }
    return { plan, device };
  };

  // 1. A fresh client: every peer is new.
  const fresh = await sync('allNew', body);
  // Make sure every peer is there for the next step, whatever the driver did.
  if (fresh.plan && (result.allNew as Record<string, unknown>).applyError) {
    const changes = fresh.plan.changes.filter((c) => c.allowedIps !== undefined);
    const config = join(paths.dumpFile, '..', 'all.conf');
    writeFileSync(config, addconfText(changes));
    await runCommand('wg', ['addconf', paths.wgInterface, config], undefined, 600_000);
  }
  // 2. The real interface read at n peers.
  const reads: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await driver.readDevice();
    reads.push(performance.now() - t0);
  }
  result.wireguardGoReadMs = median(reads);
  // 3. `changed` peers moved.
  const k = Math.min(options.changed, n);
  const movedBody = { ...body, revision: 2, peers: body.peers.map((p, i) => (i < k ? { ...p, endpoint: peerEndpoint(i, 1) } : p)) };
  await sync(`changed${k}`, movedBody);

  // 4. The seed's way: one `wg set` per peer.
  const sample = Math.min(options.seedSetSample, n);
  const t0 = performance.now();
  try {
    for (let i = 0; i < sample; i++) {
      await runCommand('wg', ['set', paths.wgInterface, 'peer', peerKey(i), 'endpoint', peerEndpoint(i, 2)]);
    }
    const perPeer = (performance.now() - t0) / sample;
    result.seed = { wgSetPerPeerMs: round(perPeer), [`changed${k}Ms`]: round(perPeer * k), allNewMs: round(perPeer * n), extrapolatedFrom: sample };
  } catch (error) {
    // Keep what was measured above.
    result.seed = { error: (error as Error).message.slice(-300) };
  }
  // Back to a fresh interface for the next size.
  await runCommand('wg', ['setconf', paths.wgInterface, join(paths.dumpFile, '..', 'client.conf')], undefined, 600_000);
  return result;
}

async function innerRole(options: BenchOptions, paths: Paths): Promise<void> {
  for (const n of options.peers) {
    const row: Record<string, unknown> = { peers: n, loadAtStart: loadavg().map((l) => round(l)) };
    process.stderr.write(`bench:scale: ${n} peers\n`);
    const guard = async (what: () => Promise<Record<string, unknown>>) => {
      try {
        return await what();
      } catch (error) {
        return { error: (error as Error).message.slice(-400) };
      }
    };
    const only = options.only;
    if (!only || only === 'server') {
      row.read = await guard(() => measureRead(n, paths));
      row.server = await guard(() => measureServer('snakebite', n, options, paths));
      row.seedServer = await guard(() => measureServer('seed', n, options, paths));
    }
    if (!only || only === 'client') row.client = await guard(() => measureClient(n, options, paths));
    row.loadAtEnd = loadavg().map((l) => round(l));
    // One line per size, so a later size that fails does not lose the earlier ones.
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
}

// ─── the orchestrator: namespace, wireguard-go, teardown ────────────────────

function commit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return undefined;
  }
}

export async function runScaleBench(argv: readonly string[]): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0) throw new Error('bench:scale needs root: it makes a network namespace (run: sudo npm run bench:scale)');
  const { options } = parseOptions(argv);
  const id = `sbs${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  const resources = new LabResources(id);
  const ns = id;
  const wgInterface = `${id}wg`;
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg().map((l) => round(l));
  try {
    const dir = mkdtempSync(join(tmpdir(), `${id}-`));
    resources.addTmpDir(dir);
    const paths: Paths = { dumpFile: join(dir, 'dump'), fakeWg: join(dir, 'wg'), wgInterface, privateKeyFile: join(dir, 'client.key') };
    writeFileSync(paths.fakeWg, FAKE_WG);
    chmodSync(paths.fakeWg, 0o755);
    writeFileSync(paths.privateKeyFile, `${generateKeyPair().privateKey}\n`, { mode: 0o600 });

    const run = (args: string[]) => execFileSync(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
    run(['ip', 'netns', 'add', ns]);
    resources.addNamespace(ns);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    run(['ip', '-n', ns, 'addr', 'add', `${SERVER_ADDRESS}/32`, 'dev', 'lo']);
    run(['ip', '-n', ns, 'route', 'add', 'local', '10.77.0.0/16', 'dev', 'lo']);

    // The client's interface: wireguard-go in the namespace.
    const argvGo = ['ip', 'netns', 'exec', ns, 'wireguard-go', '-f', wgInterface];
    const go = spawn(argvGo[0]!, argvGo.slice(1), { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
    resources.addWgInterface(wgInterface);
    resources.addProcess(go.pid!, argvGo);
    for (let i = 0; i < 100 && !existsSync(`/var/run/wireguard/${wgInterface}.sock`); i++) await sleep(50);
    if (!existsSync(`/var/run/wireguard/${wgInterface}.sock`)) throw new Error('wireguard-go did not start within 5 s');

    const argvInner = ['ip', 'netns', 'exec', ns, process.execPath, '--max-old-space-size=4096', __filename, '--role', 'inner', JSON.stringify({ options, paths })];
    const inner = spawn(argvInner[0]!, argvInner.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    resources.addProcess(inner.pid!, argvInner);
    let stdout = '';
    inner.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const code = await new Promise<number | null>((resolve) => inner.on('exit', resolve));
    const sizes = stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as unknown);
    return {
      bench: 'scale',
      commit: argv.includes('--commit') ? argv[argv.indexOf('--commit') + 1] : commit(),
      startedAt,
      machine: {
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        memoryMB: Math.round(totalmem() / 2 ** 20),
        kernel: release(),
        node: process.version,
        loadAtStart,
        loadAtEnd: loadavg().map((l) => round(l)),
        note: 'load average shows other work on the machine: figures taken while it is above ~0.5 are noisy',
      },
      options,
      ...(code !== 0 ? { error: `the measuring process exited with ${code} after ${sizes.length} of ${options.peers.length} sizes` } : {}),
      sizes,
    };
  } finally {
    resources.teardown();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const role = argv[0] === '--role' ? argv[1] : undefined;
  if (role === 'server') return serverRole(argv[2] ?? 'snakebite');
  if (role === 'inner') {
    const { options, paths } = JSON.parse(argv[2]!) as { options: BenchOptions; paths: Paths };
    return innerRole(options, paths);
  }
  const { out } = parseOptions(argv);
  const result = await runScaleBench(argv);
  const text = `${JSON.stringify(result, null, 2)}\n`;
  if (out) writeFileSync(out, text);
  process.stdout.write(text);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  });
}
