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
 * F's peers have /32 AllowedIPs and F forwards between them. What A, B and C
 * have in their config depends on their configuration style (`ConfigStyle`):
 * F with an Endpoint and the overlay or only F's own address, the other peers
 * listed without endpoints or not at all. Every host's interface comes up as
 * `wg-quick up` brings it up (`wgQuickUp`). Every name carries a per-run id; the
 * run's resources are recorded and torn down even when the test fails or is killed.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { endpointEquals, formatEndpoint, formatIp, longestMatch, parseEndpoint, parseIp } from '../src/ip/address';
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
/** How one peer reaches another (`NatLab.pathOf`). */
export type LabPath = 'direct' | 'lan' | 'relayed' | 'none';
/** The hosts behind NATs, which may run `snakebite client`. */
export type PeerName = Exclude<HostName, 'f'>;

/**
 * What a peer's wg-quick file holds, the configurations users write:
 * - `unlisted` (S1): the fang peer with an Endpoint and the whole overlay as
 *   AllowedIPs; no other peers (the client adds them). Snakebite's README.
 * - `listed` (S2): the same fang peer, and every other peer listed with its /32
 *   and no Endpoint, as the original tool advised.
 * - `fang-only` (S3): the fang peer routes only its own address (/32); every
 *   other peer listed with its /32 and no Endpoint.
 * - `no-client` (S4): a phone's WireGuard app or a router: the fang peer with
 *   the whole overlay, no other peers, and no `snakebite client` at all.
 */
export type ConfigStyle = 'unlisted' | 'listed' | 'fang-only' | 'no-client';

/** The issue's names for the styles, for reports. */
export const STYLE_LABEL: Readonly<Record<ConfigStyle, string>> = { unlisted: 'S1', listed: 'S2', 'fang-only': 'S3', 'no-client': 'S4' };

/** A persistent keepalive on every entry of the styles that follow the original tool's advice, 25 s to the fang otherwise. */
const DEFAULT_KEEPALIVE: Readonly<Record<ConfigStyle, number>> = { unlisted: 25, listed: 5, 'fang-only': 5, 'no-client': 25 };

export interface NatLabOptions {
  readonly natA?: NatKind;
  readonly natB?: NatKind;
  /** Adds host C on A's LAN, behind the same NAT. */
  readonly withHostC?: boolean;
  /**
   * Each peer's configuration style: one for all (default `unlisted`), or one
   * per host for a mixed network (hosts not named are `unlisted`).
   */
  readonly style?: ConfigStyle | Partial<Record<PeerName, ConfigStyle>>;
  /**
   * PersistentKeepalive, in seconds, on every entry of the peers' configs
   * (the fang and listed peers); default 5 for `listed` and `fang-only`, 25
   * for the fang entry otherwise.
   */
  readonly keepalive?: number;
  /**
   * Every peer that runs a client has `PostUp = snakebite client --once`, as
   * the README advises; `snakebite server` then starts on F before the peers
   * come up (`lab.server`).
   */
  readonly postUp?: boolean;
  /**
   * `snakebite server` starts on F before the peers come up (`lab.server`),
   * so clients started right after `create` meet WireGuard's fresh
   * interface-up attempts and its armed 5 s retry, as a daemon started by
   * systemd right after wg-quick does. Implied by `postUp`.
   */
  readonly serverFirst?: boolean;
  /** Listed peers share a PresharedKey per pair (in both files), so a client that re-creates an entry must keep it. */
  readonly presharedKeys?: boolean;
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
  /** What its wg-quick file holds; F has `unlisted` (it is no peer of the others' kind). */
  readonly style: ConfigStyle;
  /** What its last `PostUp` printed and how it ended, with `postUp`. */
  postUp?: { code: number | string; output: string };
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

/** One `[Peer]` of a wg-quick file. */
export interface WgQuickPeer {
  readonly publicKey: string;
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  readonly presharedKey?: string;
  /** Seconds; undefined leaves it off. */
  readonly persistentKeepalive?: number;
}

/** A wg-quick file: its `[Interface]` (with wg-quick's own Address and PostUp) and its peers. */
export interface WgQuickConfig {
  readonly privateKey: string;
  readonly listenPort: number;
  /** wg-quick's `Address`; undefined in the part `wg setconf` reads. */
  readonly address?: string | undefined;
  /** wg-quick's `PostUp`; `%i` already replaced by the interface name. */
  readonly postUp?: string | undefined;
  readonly peers: readonly WgQuickPeer[];
}

/** The file's text; without `address` and `postUp` it is what `wg setconf` reads (wg-quick's `strip`). */
export function renderWgQuick(config: WgQuickConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${config.privateKey}`, `ListenPort = ${config.listenPort}`];
  if (config.address) lines.push(`Address = ${config.address}`);
  if (config.postUp) lines.push(`PostUp = ${config.postUp}`);
  for (const peer of config.peers) {
    lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${peer.allowedIps.join(', ')}`);
    if (peer.presharedKey) lines.push(`PresharedKey = ${peer.presharedKey}`);
    if (peer.endpoint) lines.push(`Endpoint = ${peer.endpoint}`);
    if (peer.persistentKeepalive) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

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
  /** When the lab started building (ms since the epoch): no handshake of this run is older. */
  readonly createdAt = Date.now();
  /** `snakebite server` on F once started (by `startServer`, or by the lab itself with `postUp`). */
  server: LabProcess | undefined;
  private readonly resources: LabResources;
  private readonly processes: LabProcess[] = [];
  private readonly keyDir: string;
  private readonly log: LabLog | undefined;
  private readonly inetNs: string;
  private readonly presharedKeyByPair = new Map<string, string>();

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
        style: spec.name === 'f' ? 'unlisted' : this.styleOf(spec.name),
        publicEndpoint: spec.publicEndpoint,
      });
    }
    await this.wgQuickUp(this.host('f'));
    if (this.options.postUp || this.options.serverFirst) this.server = await this.startServer();
    // With PostUp the peers come up one after the other, as machines do, each PostUp seeing those before it.
    if (this.options.postUp) for (const host of this.peers()) await this.wgQuickUp(host);
    else await Promise.all(this.peers().map((host) => this.wgQuickUp(host)));
    await Promise.all(
      hostSpecs.map((spec) =>
        waitFor(`${spec.name}'s handshake with F`, async () => ((await this.peerOf(spec.name, 'f'))?.latestHandshake ? true : undefined), { timeoutMs: 15_000 }),
      ),
    );
    // A cone NAT keeps ListenPort 51820 for one host only (A and C share natA):
    // the others appear where F sees them, which is where everyone sees them.
    const atFang = await this.dump('f');
    for (const host of this.peers()) {
      if (host.router && this.router(host.router).nat === 'symmetric') continue;
      const seen = atFang.peers.find((p) => p.publicKey === host.keys.publicKey)?.endpoint;
      if (seen) host.publicEndpoint = formatEndpoint(seen);
    }
  }

  private styleOf(name: PeerName): ConfigStyle {
    const style = this.options.style;
    if (style === undefined) return 'unlisted';
    return typeof style === 'string' ? style : style[name] ?? 'unlisted';
  }

  /** The hosts behind NATs (A, B, and C when the lab has it). */
  peers(): LabHost[] {
    return [...this.hosts.values()].filter((h) => h.name !== 'f');
  }

  /** The peers that run `snakebite client` (all but `no-client` ones). */
  clientPeers(): LabHost[] {
    return this.peers().filter((h) => h.style !== 'no-client');
  }

  /**
   * Sets (or changes) the NAT behaviour of a router: its SNAT rule and a home
   * router's WAN filter, in one iptables-restore, so that no packet ever
   * leaves un-NATed while the rules change (a real router never leaks its LAN
   * addresses; a flush-then-add left a window where F saw a peer's LAN address).
   */
  async configureNat(router: LabRouter): Promise<void> {
    const lan = router.name === 'natA' ? '192.168.1.2' : '192.168.2.2';
    const forwarded = router.nat === 'forwarded';
    const rules = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':INPUT ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':POSTROUTING ACCEPT [0:0]',
      // SNAT to the router's current public address; --random-fully gives every
      // destination its own random port (symmetric), without it the source port is
      // kept for every destination (endpoint-independent mapping, like MASQUERADE).
      `-A POSTROUTING -o ${router.wan} -j SNAT --to-source ${router.publicAddress}${router.nat === 'symmetric' ? ' --random-fully' : ''}`,
      ...(forwarded ? [`-A PREROUTING -i ${router.wan} -p udp --dport ${WG_PORT} -j DNAT --to-destination ${lan}:${WG_PORT}`] : []),
      'COMMIT',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ...(forwarded ? [`-A FORWARD -i ${router.wan} -p udp -d ${lan} --dport ${WG_PORT} -m conntrack --ctstate DNAT -j ACCEPT`] : []),
      // Unsolicited packets from the WAN are dropped before conntrack confirms them,
      // as on a home router; otherwise they would occupy the tuple a punch needs.
      `-A INPUT -i ${router.wan} -m conntrack --ctstate NEW -j DROP`,
      `-A FORWARD -i ${router.wan} -m conntrack --ctstate NEW -j DROP`,
      'COMMIT',
      '',
    ].join('\n');
    const file = join(this.keyDir, `${router.name}.rules`);
    writeFileSync(file, rules, { mode: 0o600 });
    await this.inNs(router.ns, ['iptables-restore', '-w', '5', file]);
  }

  /**
   * Switches a router between cone and symmetric and forgets its mappings;
   * its hosts' `publicEndpoint` becomes the router's address and port 51820
   * (what a cone NAT keeps for one host).
   */
  async setNat(name: 'natA' | 'natB', nat: NatKind): Promise<void> {
    const router = this.router(name);
    router.nat = nat;
    await this.configureNat(router);
    await this.flushConntrack(name);
    for (const host of this.hosts.values()) if (host.router === name) host.publicEndpoint = `${router.publicAddress}:${WG_PORT}`;
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

  /** Starts wireguard-go for a host: what `wg-quick`'s add_if does without a kernel module. */
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

  /**
   * A host's wg-quick file, by its style. F lists every peer with its /32 and
   * no endpoint (it learns them from their packets) and forwards between them.
   */
  wgQuickConfig(name: HostName): WgQuickConfig {
    const host = this.host(name);
    const f = this.host('f');
    const iface = { privateKey: host.keys.privateKey, listenPort: WG_PORT, address: `${host.overlayAddress}/24` };
    if (host === f) return { ...iface, peers: this.peers().map((p) => ({ publicKey: p.keys.publicKey, allowedIps: [`${p.overlayAddress}/32`] })) };
    const keepalive = this.options.keepalive ?? DEFAULT_KEEPALIVE[host.style];
    const fang: WgQuickPeer = {
      publicKey: f.keys.publicKey,
      endpoint: this.fangEndpoint(),
      allowedIps: [host.style === 'fang-only' ? `${f.overlayAddress}/32` : OVERLAY_PREFIX],
      persistentKeepalive: keepalive,
    };
    const listed = host.style === 'listed' || host.style === 'fang-only';
    const others: WgQuickPeer[] = listed
      ? this.peers()
          .filter((p) => p !== host)
          .map((p) => ({
            publicKey: p.keys.publicKey,
            allowedIps: [`${p.overlayAddress}/32`],
            ...(this.options.presharedKeys ? { presharedKey: this.presharedKey(host.name, p.name) } : {}),
            persistentKeepalive: keepalive,
          }))
      : [];
    const postUp = this.options.postUp && host.style !== 'no-client' ? `snakebite ${this.clientArgs(name, ['--once']).join(' ')}` : undefined;
    return { ...iface, peers: [fang, ...others], ...(postUp ? { postUp } : {}) };
  }

  /** The PresharedKey two peers share (`presharedKeys`), made once per pair. */
  presharedKey(x: HostName, y: HostName): string {
    const pair = [x, y].sort().join('-');
    let key = this.presharedKeyByPair.get(pair);
    if (!key) this.presharedKeyByPair.set(pair, (key = randomBytes(32).toString('base64')));
    return key;
  }

  /**
   * Brings a host's interface up as `wg-quick up` does, step for step: the
   * interface (wireguard-go), `wg setconf` from the config's WireGuard part
   * while the link is down, the address, link up (WireGuard's first handshake
   * attempts to every peer with a keepalive happen here, endpoint or not), a
   * route for every allowed IP not already routed on the interface (longest
   * first), and `PostUp` last.
   */
  private async wgQuickUp(host: LabHost): Promise<void> {
    const config = this.wgQuickConfig(host.name);
    const file = join(this.keyDir, `${host.wgInterface}.conf`);
    writeFileSync(file, renderWgQuick(config), { mode: 0o600 });
    const setconf = join(this.keyDir, `${host.wgInterface}.setconf`);
    writeFileSync(setconf, renderWgQuick({ ...config, address: undefined, postUp: undefined }), { mode: 0o600 });
    await this.startWireGuard(host);
    await this.inNs(host.ns, ['wg', 'setconf', host.wgInterface, setconf]);
    if (config.address) await exec(['ip', '-n', host.ns, 'addr', 'add', config.address, 'dev', host.wgInterface], this.log);
    await exec(['ip', '-n', host.ns, 'link', 'set', 'mtu', '1420', 'up', 'dev', host.wgInterface], this.log);
    const prefixes = config.peers.flatMap((p) => p.allowedIps).sort((x, y) => Number(y.split('/')[1]) - Number(x.split('/')[1]));
    for (const prefix of prefixes) {
      const routed = await exec(['ip', '-n', host.ns, '-4', 'route', 'show', 'dev', host.wgInterface, 'match', prefix], this.log);
      if (routed.stdout.trim() === '') await exec(['ip', '-n', host.ns, '-4', 'route', 'add', prefix, 'dev', host.wgInterface], this.log);
    }
    if (config.postUp) {
      const argv = [...snakebiteArgv(), ...config.postUp.split(' ').slice(1)];
      const proc = this.startProcess(host.name, 'PostUp', argv);
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([proc.exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 30_000)))]);
      clearTimeout(timer);
      if (code === 'timeout') proc.child.kill('SIGKILL');
      host.postUp = { code, output: proc.output.text() };
    }
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
    await this.wgQuickUp(host);
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

  /**
   * `snakebite server` on F, listening on its overlay address; resolves once
   * it listens. With `postUp` the lab started it already: this returns it,
   * unless it was stopped.
   */
  async startServer(extraArgs: readonly string[] = []): Promise<LabProcess> {
    if (this.server && this.server.child.exitCode === null && this.server.child.signalCode === null) return this.server;
    const f = this.host('f');
    const proc = this.startSnakebite('f', ['server', '--interface', f.wgInterface, '--listen', f.overlayAddress, ...extraArgs]);
    await waitFor('snakebite server to listen', async () => {
      if (proc.output.text().includes('server-listening')) return true;
      if (proc.child.exitCode !== null) throw new Error(`snakebite server exited: ${proc.output.text()}`);
      return undefined;
    }, { timeoutMs: 10_000 });
    this.server = proc;
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
   * How `of` reaches `peer` now, from `of`'s interface alone, by WireGuard's
   * own cryptokey routing: the peer entry whose allowed IPs hold the longest
   * prefix containing `peer`'s overlay address carries the traffic.
   * `relayed`: that entry is the fang peer. `direct` / `lan`: it is `peer`
   * itself, with an endpoint (public / 192.168.x) and a handshake within
   * WireGuard's session lifetime (180 s). `none`: no entry routes it, or
   * `peer`'s entry routes it with no live session.
   */
  async pathOf(of: HostName, peer: HostName): Promise<{ path: LabPath; entry: PeerState | undefined }> {
    const device = await this.dump(of);
    const target = parseIp(this.host(peer).overlayAddress)!;
    let owner: PeerState | undefined;
    let ownerLength = -1;
    for (const p of device.peers) {
      const match = longestMatch(p.allowedIps, target);
      if (match && match.length > ownerLength) [owner, ownerLength] = [p, match.length];
    }
    const entry = device.peers.find((p) => p.publicKey === this.host(peer).keys.publicKey);
    if (!owner) return { path: 'none', entry };
    if (owner.publicKey === this.host('f').keys.publicKey) return { path: 'relayed', entry };
    const live = owner.latestHandshake > 0 && Date.now() / 1000 - owner.latestHandshake < 180;
    if (owner !== entry || !owner.endpoint || !live) return { path: 'none', entry };
    return { path: /^192\.168\./.test(formatIp(owner.endpoint.address)) ? 'lan' : 'direct', entry };
  }

  /** Polls `pathOf` until it is `want`; resolves with the entry, or throws saying what the path was. */
  async waitForPath(of: HostName, peer: HostName, want: LabPath, options: { timeoutMs: number }): Promise<PeerState | undefined> {
    let last = 'never read';
    const found = await waitFor(
      `${of}'s path to ${peer} to be ${want}`,
      async () => {
        const { path, entry } = await this.pathOf(of, peer);
        last = path;
        return path === want ? { entry } : undefined;
      },
      { timeoutMs: options.timeoutMs, intervalMs: 50 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; it was ${last}`);
    });
    return found.entry;
  }

  /**
   * Waits until `of` has a direct (or LAN) path to `peer`: `peer`'s entry
   * routes its overlay address, at exactly the expected endpoint (address and
   * port; by default `peer`'s `publicEndpoint`), with a handshake completed at
   * or after `since` (ms since the epoch; WireGuard counts handshakes in whole
   * seconds, so one in the same second as `since` counts). Returns the entry.
   */
  waitForDirect(of: HostName, peer: HostName, options: { timeoutMs: number; since: number; endpoint?: string }): Promise<PeerState> {
    const other = this.host(peer);
    if (!options.endpoint && other.router && this.router(other.router).nat === 'symmetric') {
      throw new Error(`waitForDirect(${of}, ${peer}): ${peer} is behind a symmetric NAT, whose port towards ${of} nobody can predict; pass the endpoint`);
    }
    const want = parseEndpoint(options.endpoint ?? other.publicEndpoint);
    if (!want) throw new Error(`waitForDirect: bad endpoint ${options.endpoint ?? other.publicEndpoint}`);
    const sinceS = Math.floor(options.since / 1000);
    let last = 'never read';
    return waitFor(
      `a direct handshake from ${of} to ${peer} at ${formatEndpoint(want)}`,
      async () => {
        const { path, entry } = await this.pathOf(of, peer);
        last = `${path}, ${entry?.endpoint ? formatEndpoint(entry.endpoint) : 'no endpoint'}, handshake ${entry?.latestHandshake ? `${entry.latestHandshake - sinceS} s after the event` : 'never'}`;
        if ((path !== 'direct' && path !== 'lan') || !entry?.endpoint || entry.latestHandshake < sinceS) return undefined;
        return endpointEquals(entry.endpoint, want) ? entry : undefined;
      },
      { timeoutMs: options.timeoutMs, intervalMs: 25 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last seen: ${last}`);
    });
  }

  /**
   * Milliseconds from `since` (ms since the epoch) to the first reply of a
   * ping stream from `from` to `to` (20 a second, timestamped by ping), or
   * null when none came within `limitMs` of `since`. With `bothWays`, `to`
   * pings `from` at the same time, as real traffic does (a port-restricted
   * NAT opens only for what its side sent).
   */
  async firstReply(from: HostName, to: HostName, since: number, limitMs: number, bothWays = false): Promise<number | null> {
    const remaining = Math.max(0, since + limitMs - Date.now());
    const count = String(Math.max(1, Math.ceil(remaining / 50)));
    const there = this.startProcess(from, `ping to ${to}`, ['ping', '-n', '-D', '-i', '0.05', '-W', '1', '-c', count, this.host(to).overlayAddress]);
    const back = bothWays ? this.startProcess(to, `ping to ${from}`, ['ping', '-n', '-i', '0.05', '-W', '1', '-c', count, this.host(from).overlayAddress]) : undefined;
    try {
      for (let i = 0; i < 10_000; i++) {
        for (const line of there.output.all()) {
          const match = /^\[(\d+\.\d+)\] .*icmp_seq=/.exec(line);
          if (match && Number(match[1]) * 1000 >= since) return Math.round(Number(match[1]) * 1000 - since);
        }
        if (Date.now() - since > limitMs || there.child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      return null;
    } finally {
      await Promise.all([this.stop(there), ...(back ? [this.stop(back)] : [])]);
    }
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
    const lines = (p: LabProcess) => {
      const kept = p.output.all().filter((line) => !/^[┌│└]/.test(line));
      // A ping stream says enough in its first and last lines.
      return (p.name.startsWith('ping') && kept.length > 8 ? [...kept.slice(0, 4), `... ${kept.length - 8} lines ...`, ...kept.slice(-4)] : kept).join('\n');
    };
    return this.processes.map((p) => `--- ${p.name} (pid ${p.pid})\n${lines(p)}`).join('\n');
  }

  /** Stops every process the lab started and deletes every namespace, socket and file it made. */
  teardown(): void {
    this.resources.teardown();
  }
}
