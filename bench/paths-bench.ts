/**
 * `npm run bench:paths [-- --runs N]`: for each NAT combination the lab has,
 * which path two peers end up on (direct, LAN, relayed through F) and how long
 * it took from both clients starting: to the first ping reply (any path) and
 * to the settled path. Prints JSON with the machine noted. Needs root.
 */
import { cpus, release } from 'node:os';
import { formatEndpoint } from '../src/ip/address';
import { NatLab, type HostName, type NatLabOptions } from '../lab/nat-lab';

interface Scenario {
  readonly name: string;
  readonly options: NatLabOptions;
  readonly peer: HostName;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'cone-cone', options: {}, peer: 'b' },
  { name: 'cone-symmetric', options: { natB: 'symmetric' }, peer: 'b' },
  { name: 'symmetric-symmetric', options: { natA: 'symmetric', natB: 'symmetric' }, peer: 'b' },
  { name: 'same-lan', options: { withHostC: true }, peer: 'c' },
  { name: 'ipv6', options: { ipv6: true }, peer: 'b' },
];
const SETTLE_LIMIT_MS = 30_000;

async function runOnce(scenario: Scenario): Promise<{ path: string; firstReplyMs: number | null; settledMs: number | null }> {
  const lab = await NatLab.create(scenario.options);
  try {
    await lab.startServer();
    const other = lab.host(scenario.peer);
    const started = Date.now();
    lab.startSnakebite('a', lab.clientArgs('a'));
    lab.startSnakebite(scenario.peer, lab.clientArgs(scenario.peer));
    let firstReplyMs: number | null = null;
    let settled: { path: string; at: number } | undefined;
    for (let i = 0; i < 2000 && Date.now() - started < SETTLE_LIMIT_MS && !settled; i++) {
      if (firstReplyMs === null && (await lab.ping('a', other.overlayAddress, 1, { intervalS: 0.2 })).received) firstReplyMs = Date.now() - started;
      const entry = await lab.peerOf('a', scenario.peer);
      if (entry?.endpoint && entry.allowedIps.length > 0 && entry.latestHandshake > 0) {
        const lan = formatEndpoint(entry.endpoint).startsWith('192.168.');
        settled = { path: lan ? 'lan' : 'direct', at: Date.now() - started };
      } else if (entry?.endpoint && entry.allowedIps.length === 0 && Date.now() - started > 12_000 && firstReplyMs !== null) {
        // Relayed and still relayed past the relay deadline (8 s) plus a retry: it stays relayed.
        settled = { path: 'relayed', at: Date.now() - started };
      }
    }
    if (!settled) {
      // Say what the entry looked like, so an unsettled run can be understood.
      const entry = await lab.peerOf('a', scenario.peer);
      process.stderr.write(`bench: ${scenario.name}: not settled: ${JSON.stringify(entry ? { endpoint: entry.endpoint && formatEndpoint(entry.endpoint), allowedIps: entry.allowedIps.length, latestHandshake: entry.latestHandshake } : null)}\n${lab.outputs()}\n`);
    }
    return { path: settled?.path ?? 'none', firstReplyMs, settledMs: settled?.path === 'relayed' ? null : settled?.at ?? null };
  } finally {
    lab.teardown();
  }
}

async function main(): Promise<void> {
  const runsFlag = process.argv.indexOf('--runs');
  const runs = runsFlag === -1 ? 5 : Math.max(1, Math.min(50, Number(process.argv[runsFlag + 1]) || 5));
  const results: Record<string, unknown> = {};
  for (const scenario of SCENARIOS) {
    const samples = [];
    for (let i = 0; i < runs; i++) {
      samples.push(await runOnce(scenario));
      process.stderr.write(`bench: ${scenario.name} run ${i + 1}/${runs}: ${JSON.stringify(samples[samples.length - 1])}\n`);
    }
    const median = (values: (number | null)[]) => {
      const ok = values.filter((v): v is number => v !== null).sort((x, y) => x - y);
      return ok.length ? ok[Math.floor((ok.length - 1) / 2)]! : null;
    };
    const paths: Record<string, number> = {};
    for (const sample of samples) paths[sample.path] = (paths[sample.path] ?? 0) + 1;
    results[scenario.name] = {
      paths,
      firstReplyMedianMs: median(samples.map((s) => s.firstReplyMs)),
      directOrLanMedianMs: median(samples.map((s) => s.settledMs)),
      samples,
    };
  }
  process.stdout.write(
    `${JSON.stringify(
      {
        benchmark: 'lab: path two daemon clients settle on per NAT combination; ms from both clients starting to the first A->peer ping reply (any path) and to a direct or LAN path with allowed IPs',
        machine: { cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release(), node: process.version },
        runs,
        results,
      },
      null,
      2,
    )}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
