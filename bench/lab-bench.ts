/**
 * `npm run bench:lab [-- --runs N]`: how fast two peers behind cone NATs get a
 * direct path, and how fast it heals after B's NAT rebinds to a new public
 * address, for Snakebite and for a seed-style client (bench/seed-client.sh).
 * Prints JSON with the machine noted. Needs root (it builds the lab).
 */
import { cpus, release } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { NatLab, type NatLabOptions } from '../lab/nat-lab';

type Tool = 'snakebite' | 'snakebite-preconfigured' | 'seed-style';
const SEED_CLIENT = join(resolve(__dirname, '..', '..'), 'bench', 'seed-client.sh');
const CONNECT_LIMIT_MS = 40_000;
const HEAL_LIMIT_MS = 40_000;

interface Sample {
  connectMs: number | null;
  rebindHealMs: number | null;
}

function startClient(lab: NatLab, tool: Tool, name: 'a' | 'b'): void {
  const host = lab.host(name);
  if (tool === 'seed-style') lab.startProcess(name, 'seed client', ['bash', SEED_CLIENT, host.wgInterface, lab.host('f').overlayAddress]);
  else lab.startSnakebite(name, lab.clientArgs(name));
}

async function runOnce(tool: Tool): Promise<Sample> {
  // S1 for Snakebite's own advice; S2 (peers listed, keepalive 5 everywhere) as the original tool advised.
  const options: NatLabOptions = tool === 'snakebite' ? {} : { style: 'listed' };
  const lab = await NatLab.create(options);
  try {
    await lab.startServer();
    const started = Date.now();
    startClient(lab, tool, 'a');
    startClient(lab, tool, 'b');
    let connectMs: number | null = null;
    try {
      await Promise.all([lab.waitForDirect('a', 'b', { timeoutMs: CONNECT_LIMIT_MS, since: started }), lab.waitForDirect('b', 'a', { timeoutMs: CONNECT_LIMIT_MS, since: started })]);
      connectMs = Date.now() - started;
    } catch {
      return { connectMs: null, rebindHealMs: null };
    }
    // Rebind at a random moment: the seed-style client acts every 10 s, the
    // heartbeat every second, and a fixed moment would favour one phase.
    await new Promise((r) => setTimeout(r, 1000 + Math.random() * 10_000));
    await lab.rebind('natB');
    const rebound = Date.now();
    // Traffic both ways, as real use has it: B's packets are what re-open a port-restricted NAT.
    return { connectMs, rebindHealMs: await lab.firstReply('a', 'b', rebound, HEAL_LIMIT_MS, true) };
  } finally {
    lab.teardown();
  }
}

function summary(values: (number | null)[]) {
  const ok = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const median = ok.length === 0 ? null : ok.length % 2 ? ok[(ok.length - 1) / 2]! : Math.round((ok[ok.length / 2 - 1]! + ok[ok.length / 2]!) / 2);
  return { medianMs: median, minMs: ok[0] ?? null, maxMs: ok[ok.length - 1] ?? null, failed: values.length - ok.length, samplesMs: values };
}

async function main(): Promise<void> {
  const runsFlag = process.argv.indexOf('--runs');
  const runs = runsFlag === -1 ? 5 : Math.max(1, Math.min(50, Number(process.argv[runsFlag + 1]) || 5));
  const only = process.argv.includes('--snakebite-only');
  const tools: Tool[] = only ? ['snakebite'] : ['snakebite', 'snakebite-preconfigured', 'seed-style'];
  const results: Record<string, unknown> = {};
  for (const tool of tools) {
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      samples.push(await runOnce(tool));
      process.stderr.write(`bench: ${tool} run ${i + 1}/${runs}: ${JSON.stringify(samples[samples.length - 1])}\n`);
    }
    results[tool] = {
      firstDirectHandshake: summary(samples.map((s) => s.connectMs)),
      rebindHealed: summary(samples.map((s) => s.rebindHealMs)),
    };
  }
  const wireguardGo = (() => {
    try {
      return execFileSync('wireguard-go', ['--version'], { encoding: 'utf8' }).split('\n')[0];
    } catch {
      return 'unknown';
    }
  })();
  const report = {
    benchmark: 'lab: cone NAT on both sides; first direct handshake after both clients start, and first A->B reply after B\'s NAT rebinds to a new public address',
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release(), node: process.version, wireguard: wireguardGo },
    runs,
    notes: {
      snakebite: 'default deployment: peers learn each other from the fang (client adds them)',
      'snakebite-preconfigured': 'style S2: A and B list each other without endpoints, PersistentKeepalive 5 on every entry (WireGuard already tried and failed to reach them at interface-up)',
      'seed-style': 'bench/seed-client.sh: plain list, one wg set per peer, every 10 s; configs in style S2 as the seed advised',
    },
    targets: { firstDirectHandshakeMedianMs: 1000, rebindHealedMedianMs: 2000 },
    results,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
