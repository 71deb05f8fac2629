/**
 * `npm run bench:paths [-- --runs N] [--styles S1,S2] [--nats cone-cone,same-lan]`:
 * for every configuration style × NAT combination of lab/matrix.ts, N runs of:
 * start `snakebite server`, bring the interfaces up as wg-quick does, start
 * every client daemon at once, and once they all run, per pair of peers: ms to
 * the first ping reply (any path), ms until the promised direct or LAN path is
 * up both ways, and the path each side shows once settled (11 s, past the
 * relay deadline). Prints JSON with medians and the machine noted. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release } from 'node:os';
import { cellOptions, describeStyles, NAT_CASES, runCell, STYLE_CASES, type PairResult } from '../lab/matrix';
import { NatLab } from '../lab/nat-lab';

/** Past `--relay-after` (8 s), so a pair that will be relayed is. */
const SETTLE_MS = 11_000;
/** A pair that has no reply within this long counts as failed (the bound is 10 s). */
const LIMIT_MS = 15_000;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

function pick<T extends { name: string }>(all: readonly T[], wanted: string | undefined): T[] {
  if (!wanted) return [...all];
  const names = wanted.split(',');
  const unknown = names.filter((n) => !all.some((c) => c.name === n));
  if (unknown.length) throw new Error(`unknown ${unknown.join(', ')}; have ${all.map((c) => c.name).join(', ')}`);
  return all.filter((c) => names.includes(c.name));
}

function summary(values: readonly (number | null)[]) {
  const ok = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const median = ok.length === 0 ? null : ok.length % 2 ? ok[(ok.length - 1) / 2]! : Math.round((ok[ok.length / 2 - 1]! + ok[ok.length / 2]!) / 2);
  return { medianMs: median, minMs: ok[0] ?? null, maxMs: ok[ok.length - 1] ?? null, missing: values.length - ok.length };
}

function wireguardGoVersion(): string {
  try {
    return /v[\d.]+/.exec(execFileSync('wireguard-go', ['--version'], { encoding: 'utf8' }))?.[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const runs = Math.max(1, Math.min(50, Number(flag('--runs')) || 5));
  const styles = pick(STYLE_CASES, flag('--styles'));
  const nats = pick(NAT_CASES, flag('--nats'));
  const loadAtStart = loadavg();
  const started = Date.now();
  const cells = [];
  for (const style of styles) {
    for (const nat of nats) {
      const samples: PairResult[][] = [];
      let configs = '';
      for (let i = 0; i < runs; i++) {
        const lab = await NatLab.create(cellOptions(style, nat));
        try {
          configs = describeStyles(lab);
          samples.push(await runCell(lab, { limitMs: LIMIT_MS, settleMs: SETTLE_MS }));
        } finally {
          lab.teardown();
        }
        process.stderr.write(`bench: ${style.name} ${nat.name} run ${i + 1}/${runs}: ${JSON.stringify(samples[samples.length - 1])}\n`);
      }
      const pairs = samples[0]!.map((first, index) => {
        const runsOfPair = samples.map((s) => s[index]!);
        const paths: Record<string, number> = {};
        for (const r of runsOfPair) {
          const shown = r.settled.there === r.settled.back ? r.settled.there : `${r.settled.there}/${r.settled.back}`;
          paths[shown] = (paths[shown] ?? 0) + 1;
        }
        return {
          pair: first.pair,
          promised: first.promised,
          settledPaths: paths,
          asPromised: runsOfPair.filter((r) => r.settled.there === r.promised && r.settled.back === r.promised && r.settledReplies >= 4).length,
          firstReply: summary(runsOfPair.map((r) => r.firstReplyMs)),
          connect: first.promised === 'relayed' ? null : summary(runsOfPair.map((r) => r.connectMs)),
          // The same from the clients being spawned, Node.js start-up included.
          connectFromSpawn: first.promised === 'relayed' ? null : summary(runsOfPair.map((r) => (r.connectMs === null ? null : r.connectMs + r.clientsUpMs))),
          clientsUp: summary(runsOfPair.map((r) => r.clientsUpMs)),
          samples: runsOfPair.map((r) => ({ firstReplyMs: r.firstReplyMs, connectMs: r.connectMs, clientsUpMs: r.clientsUpMs, settled: r.settled, settledReplies: r.settledReplies })),
        };
      });
      cells.push({ style: style.name, nat: nat.name, configs, pairs });
    }
  }
  const report = {
    benchmark:
      'lab paths per configuration style × NAT combination: client daemons spawned right after the interfaces came up; per pair, ms from every client running (client-started logged) to the first ping reply (any path) and to the promised direct/LAN path both ways (connect; connectFromSpawn adds Node.js start-up, clientsUp), and the path each side shows 11 s after every client ran',
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      kernel: release(),
      node: process.version,
      wireguardGo: wireguardGoVersion(),
      loadavgAtStart: loadAtStart.map((l) => Number(l.toFixed(2))),
      loadavgAtEnd: loadavg().map((l) => Number(l.toFixed(2))),
    },
    runs,
    durationS: Math.round((Date.now() - started) / 1000),
    styles: Object.fromEntries(STYLE_CASES.map((s) => [s.name, s.style])),
    // One line per cell and pair: the "Done when" table.
    table: cells.flatMap((c) =>
      c.pairs.map((p) => ({
        style: c.style,
        nat: c.nat,
        pair: p.pair,
        promised: p.promised,
        asPromised: `${p.asPromised}/${runs}`,
        settled: p.settledPaths,
        firstReplyMedianMs: p.firstReply.medianMs,
        connectMedianMs: p.connect?.medianMs ?? null,
        connectFromSpawnMedianMs: p.connectFromSpawn?.medianMs ?? null,
      })),
    ),
    cells,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
