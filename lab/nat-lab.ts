/**
 * A small internet in network namespaces, with real WireGuard (wireguard-go)
 * and real NATs (iptables SNAT, which maps like MASQUERADE), to run the real
 * `snakebite` in.
 *
 *                    inet: bridge "sw", 203.0.113.0/24 (TEST-NET-3)
 *        ┌────────────────────┬───────────────────────────┐
 *   F 203.0.113.1       natA 203.0.113.10            natB 203.0.113.20
 *   wg 10.10.10.1/24    SNAT: cone, or               SNAT: cone, or
 *   udp 51820           symmetric (--random-fully)   symmetric (--random-fully)
 *                       rebind moves it to .11       rebind moves it to .21
 *   snakebite server    lan 192.168.1.1/24           lan 192.168.2.1/24
 *                        │            │                   │
 *                   A 192.168.1.2  C 192.168.1.3     B 192.168.2.2
 *                   wg 10.10.10.2  wg 10.10.10.4     wg 10.10.10.3
 *                   (C only with `withHostC`)
 *
 * F's peers have /32 AllowedIPs and F forwards between them. A, B (and C) have
 * F as a peer with an Endpoint, the overlay as AllowedIPs and a keepalive, and
 * no endpoint for each other. Every name carries a per-run id; the run's
 * resources are recorded and torn down even when the test fails or is killed.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseEndpoint } from '../src/ip/address';
import type { DeviceState, PeerState } from '../src/wireguard/device-state';
import { runCommand, WgCommandDriver, type CommandRunner } from '../src/wireguard/wg-command-driver';
import { exec, spawnTracked, waitFor, type ExecResult, type LabLog, type LabProcess } from './exec';
import { generateKeyPair, type KeyPair } from './keys';
import { LabResources } from './resources';

/**
 * `cone`: endpoint-independent mapping, port-restricted filtering (a home router);
 * `symmetric`: a new random port per destination (carrier-grade NAT);
 * `forwarded`: a cone NAT whose user forwarded UDP 51820 to the first host
 * behind it, so anyone may send to it (a full cone for that port).
 */
export type NatKind = 'cone' | 'symmetric' | 'forwarded';
export type HostName = 'f' | 'a' | 'b' | 'c';

export interface NatLabOptions {
  readonly natA?: NatKind;
  readonly natB?: NatKind;
  /** Adds host C on A's LAN, behind the same NAT. */
  readonly withHostC?: boolean;
  /** A, B and C list each other as peers (without endpoints) instead of learning each other from the fang. */
  readonly peersKnowEachOther?: boolean;
  /** Persistent keepalive from each peer to F, in seconds. */
  readonly keepaliveToFang?: number;
  /** With `peersKnowEachOther`: a persistent keepalive on those entries too, as the original tool advised. */
  readonly keepaliveBetweenPeers?: number;
  /**
   * Adds IPv6 everywhere (2001:db8::/32, the documentation range): no NAT, the
   * routers forward IPv6 behind a stateful firewall that admits only replies,
   * as home routers do; the peers reach F at [2001:db8::1]:51820 and each other
   * at their own global addresses.
   */
  readonly ipv6?: boolean;
  /** Prints every command the lab runs. */
  readonly log?: LabLog;
}

export interface LabHost {
  readonly name: HostName;
  readonly router?: 'natA' | 'natB';
  readonly ns: string;
  readonly wgInterface: string;
  readonly overlayAddress: string;
  readonly keys: KeyPair;
  readonly lanAddress: string;
  /** Where the other peers should see this host's WireGuard packets come from (its NAT's public address); changes on rebind. */
  publicEndpoint: string;
}

export interface LabRouter {
  readonly name: 'natA' | 'natB';
  readonly ns: string;
  readonly wan: string;
  /** The router's two public addresses: it uses the first, and moves to the other on a rebind. */
  readonly wanAddresses: readonly [string, string];
  /** The public address its NAT maps to now. */
  publicAddress: string;
  nat: NatKind;
}

export const WG_PORT = 51820;
export const OVERLAY_PREFIX = '10.10.10.0/24';
export const FANG_PUBLIC = '203.0.113.1';
export const FANG_PUBLIC6 = '2001:db8::1';
const REPO_ROOT = resolve(__dirname, '..', '..');
export const SNAKEBITE_BIN = join(REPO_ROOT, 'bin', 'snakebite');

/**
 * How the lab runs `snakebite`: the checkout's bin under this Node.js, or,
 * when LAB_SNAKEBITE_BIN names one, that executable itself (an installed
 * package's `snakebite`, or a self-contained build), to test what users install.
 */
export function snakebiteArgv(env: NodeJS.ProcessEnv = process.env): string[] {
  const installed = env.LAB_SNAKEBITE_BIN;
  return installed ? [installed] : [process.execPath, SNAKEBITE_BIN];
}

/** Runs `wg` inside a namespace, so the product's own driver can read lab interfaces. */
function nsRunner(ns: string): CommandRunner {
  return (file, args) => runCommand('ip', ['netns', 'exec', ns, file, ...args]);
}

export class NatLab {
  readonly id: string;
  readonly hosts = new Map<HostName, LabHost>();
  readonly routers = new Map<'natA' | 'natB', LabRouter>();
  private readonly resources: LabResources;
  private readonly processes: LabProcess[] = [];
  private readonly keyDir: string;
  private readonly log: LabLog | undefined;
  private readonly inetNs: string;

  private constructor(private readonly options: NatLabOptions) {
    this.log = options.log;
    this.id = randomBytes(2).toString('hex');
    this.resources = new LabResources(this.id, this.log);
    this.keyDir = mkdtempSync(join(tmpdir(), `snakebite-lab-${this.id}-`));
    this.resources.addTmpDir(this.keyDir);
    this.inetNs = this.nsName('inet');
  }

  /** Builds the whole lab and waits until every peer has a handshake with F. */
  static async create(options: NatLabOptions = {}): Promise<NatLab> {
    if (!existsSync('/dev/net/tun')) throw new Error('the lab needs /dev/net/tun (wireguard-go runs on it)');
    const lab = new NatLab(options);
    try {
      await lab.build();
      return lab;
    } catch (error) {
      lab.teardown();
      throw error;
    }
  }

  private nsName(role: string): string {
    return `sb${this.id}-${role}`;
  }

  host(name: HostName): LabHost {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`the lab has no host ${name}`);
    return host;
  }

  router(name: 'natA' | 'natB'): LabRouter {
    return this.routers.get(name)!;
  }

  /** Runs argv inside a namespace. */
  inNs(ns: string, argv: readonly string[]): Promise<ExecResult> {
    return exec(['ip', 'netns', 'exec', ns, ...argv], this.log);
  }

  private async addNamespace(role: string): Promise<string> {
    const ns = this.nsName(role);
    this.resources.addNamespace(ns);
    await exec(['ip', 'netns', 'add', ns], this.log);
    await exec(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], this.log);
    return ns;
  }

  /** A veth pair from `ns` (named `inside`, with `address`) to a bridge port in `bridgeNs`. */
  private async wire(ns: string, inside: string, address: string, bridgeNs: string, port: string, bridge: string): Promise<void> {
    await exec(['ip', 'link', 'add', inside, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', bridgeNs], this.log);
    await exec(['ip', '-n', bridgeNs, 'link', 'set', port, 'master', bridge, 'up'], this.log);
    await exec(['ip', '-n', ns, 'addr', 'add', address, 'dev', inside], this.log);
    await exec(['ip', '-n', ns, 'link', 'set', inside, 'up'], this.log);
  }

  private async build(): Promise<void> {
    const id = this.id;
    const natKinds = { natA: this.options.natA ?? 'cone', natB: this.options.natB ?? 'cone' } as const;

    await this.addNamespace('inet');
    await exec(['ip', '-n', this.inetNs, 'link', 'add', `sb${id}sw`, 'type', 'bridge'], this.log);
    await exec(['ip', '-n', this.inetNs, 'link', 'set', `sb${id}sw`, 'up'], this.log);

    const fNs = await this.addNamespace('f');
    await this.wire(fNs, `sb${id}fu`, `${FANG_PUBLIC}/24`, this.inetNs, `sb${id}fp`, `sb${id}sw`);
    await this.inNs(fNs, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const v6 = this.options.ipv6 === true;
    if (v6) {
      await exec(['ip', '-n', fNs, 'addr', 'add', `${FANG_PUBLIC6}/64`, 'dev', `sb${id}fu`, 'nodad'], this.log);
      for (const [lan, router] of [['a', 'a'], ['b', 'b']]) {
        await exec(['ip', '-n', fNs, '-6', 'route', 'add', `2001:db8:${lan}::/64`, 'via', `2001:db8::${router}`], this.log);
      }
    }

    const sites = [
      { router: 'natA' as const, wanAddress: '203.0.113.10', lan: '192.168.1', hosts: [['a', 2, '10.10.10.2'], ...(this.options.withHostC ? [['c', 3, '10.10.10.4']] : [])] as [HostName, number, string][] },
      { router: 'natB' as const, wanAddress: '203.0.113.20', lan: '192.168.2', hosts: [['b', 2, '10.10.10.3']] as [HostName, number, string][] },
    ];
    const hostSpecs: { name: HostName; ns: string; lanAddress: string; overlay: string; publicEndpoint: string; router?: 'natA' | 'natB' }[] = [];
    for (const site of sites) {
      const short = site.router === 'natA' ? 'na' : 'nb';
      const ns = await this.addNamespace(site.router.toLowerCase());
      const wan = `sb${id}${short}u`;
      await this.wire(ns, wan, `${site.wanAddress}/24`, this.inetNs, `sb${id}${short}p`, `sb${id}sw`);
      const lanBridge = `sb${id}${short}l`;
      await exec(['ip', '-n', ns, 'link', 'add', lanBridge, 'type', 'bridge'], this.log);
      await exec(['ip', '-n', ns, 'addr', 'add', `${site.lan}.1/24`, 'dev', lanBridge], this.log);
      await exec(['ip', '-n', ns, 'link', 'set', lanBridge, 'up'], this.log);
      await this.inNs(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      const secondAddress = site.wanAddress.replace(/0$/, '1');
      await exec(['ip', '-n', ns, 'addr', 'add', `${secondAddress}/24`, 'dev', wan], this.log);
      const router: LabRouter = { name: site.router, ns, wan, wanAddresses: [site.wanAddress, secondAddress], publicAddress: site.wanAddress, nat: natKinds[site.router] };
      this.routers.set(site.router, router);
      await this.configureNat(router);
      const six = site.router === 'natA' ? 'a' : 'b';
      if (v6) {
        const other = six === 'a' ? 'b' : 'a';
        await exec(['ip', '-n', ns, 'addr', 'add', `2001:db8::${six}/64`, 'dev', wan, 'nodad'], this.log);
        await exec(['ip', '-n', ns, 'addr', 'add', `2001:db8:${six}::1/64`, 'dev', lanBridge, 'nodad'], this.log);
        await exec(['ip', '-n', ns, '-6', 'route', 'add', `2001:db8:${other}::/64`, 'via', `2001:db8::${other}`], this.log);
        await this.inNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
        // No NAT for IPv6, only a stateful firewall: replies in, nothing unsolicited.
        const ip6 = (...args: string[]) => this.inNs(ns, ['ip6tables', '-w', '5', ...args]);
        await ip6('-A', 'FORWARD', '-i', wan, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
        await ip6('-A', 'INPUT', '-i', wan, '-m', 'conntrack', '--ctstate', 'NEW', '-p', 'udp', '-j', 'DROP');
      }
      for (const [name, lastOctet, overlay] of site.hosts) {
        const hostNs = await this.addNamespace(name);
        const lanAddress = `${site.lan}.${lastOctet}`;
        await this.wire(hostNs, `sb${id}${name}u`, `${lanAddress}/24`, ns, `sb${id}${name}p`, lanBridge);
        await exec(['ip', '-n', hostNs, 'route', 'add', 'default', 'via', `${site.lan}.1`], this.log);
        let publicEndpoint = `${site.wanAddress}:${WG_PORT}`;
        if (v6) {
          const global = `2001:db8:${six}::${lastOctet}`;
          await exec(['ip', '-n', hostNs, 'addr', 'add', `${global}/64`, 'dev', `sb${id}${name}u`, 'nodad'], this.log);
          await exec(['ip', '-n', hostNs, '-6', 'route', 'add', 'default', 'via', `2001:db8:${six}::1`], this.log);
          publicEndpoint = `[${global}]:${WG_PORT}`;
        }
        hostSpecs.push({ name, ns: hostNs, lanAddress, overlay, publicEndpoint, router: site.router });
      }
    }

    const all = [{ name: 'f' as HostName, ns: fNs, lanAddress: FANG_PUBLIC, overlay: '10.10.10.1', publicEndpoint: this.fangEndpoint() }, ...hostSpecs];
    for (const spec of all) {
      this.hosts.set(spec.name, {
        name: spec.name,
        ...(spec.router ? { router: spec.router } : {}),
        ns: spec.ns,
        wgInterface: `sb${id}wg${spec.name}`,
        overlayAddress: spec.overlay,
        keys: generateKeyPair(),
        lanAddress: spec.lanAddress,
        publicEndpoint: spec.publicEndpoint,
      });
    }
    await Promise.all([...this.hosts.values()].map((host) => this.startWireGuard(host)));
    await this.configureWireGuard();
    await Promise.all(
      hostSpecs.map((spec) =>
        waitFor(`${spec.name}'s handshake with F`, async () => ((await this.peerOf(spec.name, 'f'))?.latestHandshake ? true : undefined), { timeoutMs: 15_000 }),
      ),
    );
  }

  /** Sets (or changes) the NAT behaviour of a router: its MASQUERADE rule and a home router's WAN filter. */
  async configureNat(router: LabRouter): Promise<void> {
    const ipt = (...args: string[]) => this.inNs(router.ns, ['iptables', '-w', '5', ...args]);
    await ipt('-t', 'nat', '-F', 'POSTROUTING');
    await ipt('-F', 'INPUT');
    await ipt('-F', 'FORWARD');
    // SNAT to the router's current public address; --random-fully gives every
    // destination its own random port (symmetric), without it the source port is
    // kept for every destination (endpoint-independent mapping, like MASQUERADE).
    await ipt('-t', 'nat', '-A', 'POSTROUTING', '-o', router.wan, '-j', 'SNAT', '--to-source', router.publicAddress, ...(router.nat === 'symmetric' ? ['--random-fully'] : []));
    // Unsolicited packets from the WAN are dropped before conntrack confirms them,
    // as on a home router; otherwise they would occupy the tuple a punch needs.
    await ipt('-t', 'nat', '-F', 'PREROUTING');
    if (router.nat === 'forwarded') {
      const lan = router.name === 'natA' ? '192.168.1.2' : '192.168.2.2';
      await ipt('-t', 'nat', '-A', 'PREROUTING', '-i', router.wan, '-p', 'udp', '--dport', String(WG_PORT), '-j', 'DNAT', '--to-destination', `${lan}:${WG_PORT}`);
      await ipt('-A', 'FORWARD', '-i', router.wan, '-p', 'udp', '-d', lan, '--dport', String(WG_PORT), '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'ACCEPT');
    }
    await ipt('-A', 'INPUT', '-i', router.wan, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
    await ipt('-A', 'FORWARD', '-i', router.wan, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
  }

  /** Switches a router between cone and symmetric and forgets its mappings. */
  async setNat(name: 'natA' | 'natB', nat: NatKind): Promise<void> {
    const router = this.router(name);
    router.nat = nat;
    await this.configureNat(router);
    await this.flushConntrack(name);
  }

  /**
   * A NAT rebind as a carrier does it: the router moves to its other public
   * address and forgets every mapping, so its hosts appear at a new endpoint.
   */
  async rebind(name: 'natA' | 'natB'): Promise<void> {
    const router = this.router(name);
    router.publicAddress = router.wanAddresses[router.publicAddress === router.wanAddresses[0] ? 1 : 0];
    await this.configureNat(router);
    await this.flushConntrack(name);
    for (const host of this.hosts.values()) if (host.router === name) host.publicEndpoint = `${router.publicAddress}:${WG_PORT}`;
  }

  /** A NAT "reboot": the router forgets every mapping but keeps its public address. */
  async flushConntrack(name: 'natA' | 'natB'): Promise<void> {
    await this.inNs(this.router(name).ns, ['conntrack', '-F']).catch(() => undefined);
  }

  private async startWireGuard(host: LabHost): Promise<void> {
    this.resources.addWgInterface(host.wgInterface);
    const argv = ['ip', 'netns', 'exec', host.ns, 'wireguard-go', '-f', host.wgInterface];
    const proc = spawnTracked(`wireguard-go ${host.name}`, argv, this.log);
    this.resources.addProcess(proc.pid, argv);
    this.processes.push(proc);
    const socket = `/var/run/wireguard/${host.wgInterface}.sock`;
    await waitFor(`${socket}`, async () => (existsSync(socket) ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
  }

  /** Where the peers reach F's WireGuard: over IPv6 in an `ipv6` lab. */
  fangEndpoint(): string {
    return this.options.ipv6 ? `[${FANG_PUBLIC6}]:${WG_PORT}` : `${FANG_PUBLIC}:${WG_PORT}`;
  }

  private async configureWireGuard(): Promise<void> {
    await this.configureHost(this.host('f'));
    for (const host of this.hosts.values()) if (host.name !== 'f') await this.configureHost(host);
  }

  /** Gives a host's interface its config (as wg-quick would from its file) and brings it up. */
  private async configureHost(host: LabHost): Promise<void> {
    const f = this.host('f');
    const peers = [...this.hosts.values()].filter((h) => h.name !== 'f');
    const keyFile = join(this.keyDir, `${host.name}.key`);
    writeFileSync(keyFile, `${host.keys.privateKey}\n`, { mode: 0o600 });
    const args = ['wg', 'set', host.wgInterface, 'private-key', keyFile, 'listen-port', String(WG_PORT)];
    if (host === f) {
      // F: every peer with its /32, no endpoints (F learns them from the peers' packets).
      for (const peer of peers) args.push('peer', peer.keys.publicKey, 'allowed-ips', `${peer.overlayAddress}/32`);
    } else {
      const keepalive = String(this.options.keepaliveToFang ?? 25);
      args.push('peer', f.keys.publicKey, 'endpoint', this.fangEndpoint(), 'allowed-ips', OVERLAY_PREFIX, 'persistent-keepalive', keepalive);
      if (this.options.peersKnowEachOther) {
        for (const other of peers) {
          if (other === host) continue;
          args.push('peer', other.keys.publicKey, 'allowed-ips', `${other.overlayAddress}/32`);
          if (this.options.keepaliveBetweenPeers) args.push('persistent-keepalive', String(this.options.keepaliveBetweenPeers));
        }
      }
    }
    await this.inNs(host.ns, args);
    await this.bringUp(host);
  }

  /**
   * What `wg-quick down; wg-quick up` does: the interface and every runtime
   * change to it (peers Snakebite added) are gone, then it comes back from its
   * config with the same keys and ListenPort.
   */
  async restartWireGuard(name: HostName, downForMs = 0): Promise<void> {
    const host = this.host(name);
    const running = this.processes.find((p) => p.name === `wireguard-go ${name}` && p.child.exitCode === null && p.child.signalCode === null);
    if (running) await this.stop(running);
    if (downForMs > 0) await new Promise((resolve) => setTimeout(resolve, downForMs));
    await this.startWireGuard(host);
    await this.configureHost(host);
  }

  private async bringUp(host: LabHost): Promise<void> {
    await exec(['ip', '-n', host.ns, 'addr', 'add', `${host.overlayAddress}/24`, 'dev', host.wgInterface], this.log);
    await exec(['ip', '-n', host.ns, 'link', 'set', host.wgInterface, 'up'], this.log);
  }

  /** Takes a host's WireGuard interface down or up (keys, peers and ListenPort stay). */
  async setInterfaceUp(name: HostName, up: boolean): Promise<void> {
    const host = this.host(name);
    await exec(['ip', '-n', host.ns, 'link', 'set', host.wgInterface, up ? 'up' : 'down'], this.log);
  }

  /** The product's own driver, reading a lab interface from inside its namespace. */
  driver(name: HostName): WgCommandDriver {
    const host = this.host(name);
    return new WgCommandDriver(host.wgInterface, nsRunner(host.ns));
  }

  dump(name: HostName): Promise<DeviceState> {
    return this.driver(name).readDevice();
  }

  /** `of`'s entry for peer `peer`, or undefined when `of` has no such peer. */
  async peerOf(of: HostName, peer: HostName): Promise<PeerState | undefined> {
    const key = this.host(peer).keys.publicKey;
    return (await this.dump(of)).peers.find((p) => p.publicKey === key);
  }

  /** Starts argv inside a host's namespace; stopped at teardown if still running. */
  startProcess(name: HostName, label: string, argv: readonly string[]): LabProcess {
    const full = ['ip', 'netns', 'exec', this.host(name).ns, ...argv];
    const proc = spawnTracked(`${label} on ${name}`, full, this.log);
    this.resources.addProcess(proc.pid, full);
    this.processes.push(proc);
    return proc;
  }

  /** Starts `snakebite ARGS` inside a host's namespace. */
  startSnakebite(name: HostName, args: readonly string[]): LabProcess {
    return this.startProcess(name, `snakebite ${args[0] ?? ''}`, [...snakebiteArgv(), ...args]);
  }

  /** `snakebite server` on F, listening on its overlay address; resolves once it listens. */
  async startServer(extraArgs: readonly string[] = []): Promise<LabProcess> {
    const f = this.host('f');
    const proc = this.startSnakebite('f', ['server', '--interface', f.wgInterface, '--listen', f.overlayAddress, ...extraArgs]);
    await waitFor('snakebite server to listen', async () => {
      if (proc.output.text().includes('server-listening')) return true;
      if (proc.child.exitCode !== null) throw new Error(`snakebite server exited: ${proc.output.text()}`);
      return undefined;
    }, { timeoutMs: 10_000 });
    return proc;
  }

  clientArgs(name: HostName, extraArgs: readonly string[] = []): string[] {
    return ['client', '--interface', this.host(name).wgInterface, '--server', this.host('f').overlayAddress, ...extraArgs];
  }

  /** Runs `snakebite client --once` on a host and returns how it ended. */
  async clientOnce(name: HostName, extraArgs: readonly string[] = []): Promise<{ code: number | string; output: string }> {
    const proc = this.startSnakebite(name, this.clientArgs(name, ['--once', ...extraArgs]));
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([proc.exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 30_000)))]);
    clearTimeout(timer);
    if (code === 'timeout') proc.child.kill('SIGKILL');
    return { code, output: proc.output.text() };
  }

  /** Stops a process the lab started (SIGTERM, then SIGKILL after 5 s) and returns how it ended. */
  async stop(proc: LabProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
    proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5_000);
    try {
      return await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Waits until `of` has a live handshake with `peer` over the expected
   * endpoint (by default `peer`'s NAT public address), and routes `peer`'s
   * overlay address to it (not through the fang), and returns the entry.
   */
  waitForDirect(of: HostName, peer: HostName, options: { timeoutMs: number; endpoint?: string; after?: number }): Promise<PeerState> {
    const want = parseEndpoint(options.endpoint ?? this.host(peer).publicEndpoint)?.address;
    const after = options.after ?? 0;
    return waitFor(
      `a direct handshake from ${of} to ${peer}`,
      async () => {
        const entry = await this.peerOf(of, peer);
        if (!entry || !entry.endpoint || entry.latestHandshake <= after || entry.allowedIps.length === 0) return undefined;
        return entry.endpoint.address.value === want?.value ? entry : undefined;
      },
      { timeoutMs: options.timeoutMs, intervalMs: 25 },
    );
  }

  /** Pings an overlay address from a host; returns how many of `count` replies came back. */
  async ping(from: HostName, to: string, count: number, options: { intervalS?: number; size?: number } = {}): Promise<{ sent: number; received: number; output: string }> {
    const argv = ['ping', '-n', '-q', '-c', String(count), '-i', String(options.intervalS ?? 0.2), '-W', '1', '-s', String(options.size ?? 56), to];
    const output = await this.inNs(this.host(from).ns, argv).then(
      (r) => r.stdout,
      (error: Error & { stdout?: string }) => `${error.stdout ?? ''}\n${String(error)}`,
    );
    const match = /(\d+) packets transmitted, (\d+) received/.exec(output);
    return { sent: Number(match?.[1] ?? count), received: Number(match?.[2] ?? 0), output };
  }

  /**
   * Pings for `count × intervalS` seconds and returns the longest stretch
   * without a reply, in seconds, with how many replies came back.
   */
  async pingGaps(from: HostName, to: string, count: number, intervalS: number): Promise<{ received: number; longestGapS: number; output: string }> {
    const argv = ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', to];
    const output = await this.inNs(this.host(from).ns, argv).then(
      (r) => r.stdout,
      (error: Error & { stdout?: string }) => `${error.stdout ?? ''}\n${String(error)}`,
    );
    const seqs = [...output.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
    let longest = 0;
    let previous = 0;
    for (const seq of [...seqs, count + 1]) {
      longest = Math.max(longest, (seq - previous - 1) * intervalS);
      previous = seq;
    }
    return { received: seqs.length, longestGapS: longest, output };
  }

  /** Everything the lab's processes printed, for a failing test's report. */
  outputs(): string {
    // wireguard-go's banner (a box of ─│ lines) says nothing about the test.
    const lines = (p: LabProcess) => p.output.all().filter((line) => !/^[┌│└]/.test(line)).join('\n');
    return this.processes.map((p) => `--- ${p.name} (pid ${p.pid})\n${lines(p)}`).join('\n');
  }

  /** Stops every process the lab started and deletes every namespace, socket and file it made. */
  teardown(): void {
    this.resources.teardown();
  }
}
