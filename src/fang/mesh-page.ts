/**
 * The mesh page: one self-contained HTML document (inline CSS and script, no
 * external assets, nothing to build) that draws the fang's MeshView and
 * refreshes itself from /v1/mesh.json every few seconds. The view is embedded
 * for the first paint; the script renders with textContent only, so peer data
 * never becomes markup.
 */
import type { PeerReport } from '../peer-list/peer-list';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { buildMesh, DirectSince, type MeshView } from './mesh';
import { mayLink, nameOf, type Policy } from './policy';

export const MESH_PAGE_PATH = '/mesh';
export const MESH_JSON_PATH = '/v1/mesh.json';
/** How often the page asks for a new view, in milliseconds. */
export const MESH_REFRESH_MS = 2000;

/** JSON that is safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:20px;margin:0 0 4px} .sub{color:#5b6475;margin:0 0 18px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0001;margin-bottom:22px}
th,td{border:1px solid #dde1e8;padding:6px 9px;text-align:left;vertical-align:middle}
th{background:#eef1f5;font-weight:600} code{font:12px ui-monospace,monospace}
.cell{text-align:center;min-width:92px;font-weight:600;color:#fff} .cell small{display:block;font-weight:400;opacity:.9}
.direct{background:#2e9e4f}.lan{background:#1f8a9e}.relayed{background:#d98e04}.none{background:#b03a2e}.self{background:#e4e7ec;color:#8a93a3}
.legend span{display:inline-block;padding:3px 10px;margin-right:8px;border-radius:3px;color:#fff;font-weight:600}
.nat-symmetric,.nat-rewrites-port{color:#b03a2e;font-weight:600} .nat-independent,.nat-keeps-port{color:#2e7d44}
.stale{color:#b03a2e}`;

const SCRIPT = `
(function(){
  var view = JSON.parse(document.getElementById('mesh-data').textContent);
  function el(tag, cls, text){ var e=document.createElement(tag); if(cls) e.className=cls; if(text!==undefined) e.textContent=text; return e; }
  function age(s){ if(s===null||s===undefined) return 'never'; if(s<90) return s+'s'; if(s<5400) return Math.round(s/60)+'m'; return Math.round(s/3600)+'h'; }
  function label(p){ return p.name ? p.name : p.publicKey.slice(0,8); }
  function render(){
    var byKey = {}; view.peers.forEach(function(p){ byKey[p.publicKey]=p; });
    document.getElementById('sub').textContent = 'interface ' + view['interface'] + ' · fang ' + (view.fang||'').slice(0,8) + ' · ' + view.peers.length + ' peers · updated ' + new Date(view.generatedAt*1000).toISOString().slice(11,19) + ' UTC · refreshes every ${MESH_REFRESH_MS / 1000} s';
    var peers = document.getElementById('peers'); peers.textContent='';
    var head = el('tr'); ['peer','endpoint (as F sees it)','overlay','NAT','handshake with F'].forEach(function(h){ head.appendChild(el('th',null,h)); }); peers.appendChild(head);
    view.peers.forEach(function(p){
      var tr = el('tr');
      var name = el('td'); name.appendChild(el('strong',null,label(p))); if(p.name){ name.appendChild(document.createTextNode(' ')); name.appendChild(el('code',null,p.publicKey.slice(0,8))); } tr.appendChild(name);
      tr.appendChild(el('td',null,p.endpoint||'(none)'));
      tr.appendChild(el('td',null,p.allowedIps.join(', ')));
      var nat = el('td','nat-'+p.nat,p.nat); nat.title=p.natDetail; tr.appendChild(nat);
      tr.appendChild(el('td',p.handshakeAgeSeconds===null||p.handshakeAgeSeconds>180?'stale':null,age(p.handshakeAgeSeconds)));
      peers.appendChild(tr);
    });
    var pairs = {}; view.pairs.forEach(function(x){ pairs[x.a+' '+x.b]=x; pairs[x.b+' '+x.a]=x; });
    var matrix = document.getElementById('matrix'); matrix.textContent='';
    var shown = view.pairsLimitedTo ? view.peers.slice(0, view.pairsLimitedTo) : view.peers;
    if(view.pairsLimitedTo){ var note = el('tr'); var cell = el('td',null,'pairs of the first '+view.pairsLimitedTo+' of '+view.peers.length+' peers'); cell.colSpan = shown.length+1; note.appendChild(cell); matrix.appendChild(note); }
    var top = el('tr'); top.appendChild(el('th')); shown.forEach(function(p){ top.appendChild(el('th',null,label(p))); }); matrix.appendChild(top);
    shown.forEach(function(row){
      var tr = el('tr'); tr.appendChild(el('th',null,label(row)));
      shown.forEach(function(col){
        if(row.publicKey===col.publicKey){ tr.appendChild(el('td','cell self','—')); return; }
        var x = pairs[row.publicKey+' '+col.publicKey];
        var td = el('td','cell '+x.path,x.path);
        var detail = x.path==='direct'||x.path==='lan' ? (x.directForSeconds!==undefined ? 'for '+age(x.directForSeconds) : '') : (x.path==='relayed' ? 'via F, handshakes '+age(x.handshakeAgeSeconds) : 'handshake '+age(x.handshakeAgeSeconds));
        td.appendChild(el('small',null,detail));
        td.title = x.endpoint ? 'at '+x.endpoint : (x.path==='relayed' ? 'through the fang; the older handshake with F' : 'no session');
        tr.appendChild(td);
      });
      matrix.appendChild(tr);
    });
  }
  render();
  setInterval(function(){
    fetch('${MESH_JSON_PATH}',{cache:'no-store'}).then(function(r){ return r.ok ? r.json() : null; }).then(function(v){ if(v){ view=v; render(); } }).catch(function(){});
  }, ${MESH_REFRESH_MS});
})();`;

export function renderMeshPage(view: MeshView): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Snakebite mesh</title><style>${STYLE}</style></head>
<body>
<h1>Snakebite mesh</h1><p class="sub" id="sub"></p>
<h2>Peers</h2><table id="peers"></table>
<h2>Paths between peers</h2>
<p class="legend"><span class="direct">direct</span><span class="lan">lan</span><span class="relayed">relayed via the fang</span><span class="none">none</span></p>
<table id="matrix"></table>
<noscript>This page draws with a small inline script; the same data is at ${MESH_JSON_PATH}.</noscript>
<script type="application/json" id="mesh-data">${scriptJson(view)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}

/** Who asks for the view and under which policy: an asker sees only itself and the peers the policy lets it learn. */
export interface MeshScope {
  readonly asker?: WireGuardKey;
  readonly policy?: Policy | undefined;
}

type MeshFn = (device: DeviceState, reports: ReadonlyMap<WireGuardKey, PeerReport>, scope?: MeshScope) => MeshView;

/** The mesh page and its JSON as peer-only routes of the fang server, each scoped to the asking peer. */
export function meshRoutes(
  mesh: MeshFn,
): ReadonlyMap<string, (context: { device: DeviceState; reports: ReadonlyMap<WireGuardKey, PeerReport>; asker: WireGuardKey; policy: Policy | undefined }) => { body: string; type: string }> {
  type Context = { device: DeviceState; reports: ReadonlyMap<WireGuardKey, PeerReport>; asker: WireGuardKey; policy: Policy | undefined };
  const view = (c: Context) => mesh(c.device, c.reports, { asker: c.asker, policy: c.policy });
  return new Map([
    [MESH_PAGE_PATH, (c: Context) => ({ body: renderMeshPage(view(c)), type: 'text/html; charset=utf-8' })],
    [MESH_JSON_PATH, (c: Context) => ({ body: `${JSON.stringify(view(c))}\n`, type: 'application/json' })],
  ]);
}

/** Builds mesh views (names from the policy) that remember since when each pair has been direct. */
export function meshBuilder(clock: () => number = Date.now): MeshFn {
  const directSince = new DirectSince();
  return (device, reports, scope = {}) => {
    const { asker, policy } = scope;
    const visible = asker === undefined || !policy ? device : { ...device, peers: device.peers.filter((peer) => peer.publicKey === asker || mayLink(policy, asker, peer.publicKey)) };
    const names = new Map(device.peers.flatMap((peer) => {
      const name = nameOf(policy, peer.publicKey);
      return name ? [[peer.publicKey, name] as const] : [];
    }));
    // Reports from and about hidden peers stay out too (a NAT's evidence names the peer that saw it).
    const keys = new Set(visible.peers.map((peer) => peer.publicKey));
    const seenReports = visible === device ? reports : new Map([...reports].filter(([key]) => keys.has(key)).map(([key, report]) => [key, { ...report, seen: report.seen.filter((s) => keys.has(s.publicKey)) }]));
    const view = buildMesh(visible, seenReports, Math.floor(clock() / 1000), { names, directSince: directSince.map });
    directSince.update(view, visible === device);
    return view;
  };
}
