/**
 * What doctor needs from a wg-quick config file (/etc/wireguard/IF.conf):
 * whether ListenPort is fixed, and which peers have an Endpoint. Pure; key
 * material is never kept.
 */
export interface WgConfigFacts {
  readonly path: string;
  /** The ListenPort line's value; undefined when the file has none (WireGuard then picks a random port). */
  readonly listenPort?: number;
  readonly peers: readonly { readonly publicKey: string; readonly endpoint?: string; readonly persistentKeepalive?: number; readonly allowedIps: readonly string[] }[];
}

export function parseWgConfig(text: string, path: string): WgConfigFacts {
  let section = '';
  let listenPort: number | undefined;
  const peers: { publicKey: string; endpoint?: string; persistentKeepalive?: number; allowedIps: string[] }[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1]!.toLowerCase();
      if (section === 'peer') peers.push({ publicKey: '', allowedIps: [] });
      continue;
    }
    const pair = /^(\w+)\s*=\s*(.*)$/.exec(line);
    if (!pair) continue;
    const key = pair[1]!.toLowerCase();
    const value = pair[2]!.trim();
    const peer = peers[peers.length - 1];
    if (section === 'interface' && key === 'listenport') listenPort = Number(value);
    if (section === 'peer' && peer) {
      if (key === 'publickey') peer.publicKey = value;
      if (key === 'endpoint') peer.endpoint = value;
      if (key === 'persistentkeepalive') peer.persistentKeepalive = value === 'off' ? 0 : Number(value);
      if (key === 'allowedips') peer.allowedIps.push(...value.split(',').map((s) => s.trim()).filter(Boolean));
    }
  }
  return { path, ...(listenPort !== undefined && Number.isInteger(listenPort) ? { listenPort } : {}), peers };
}
