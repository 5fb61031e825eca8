// A certificate authority made for one test or benchmark, and a certificate it signs for the
// coordinator's addresses, so the coordinator serves wss:// as it does on the internet. Made with
// the openssl command (scripts/setup.sh installs it); Node peers trust the CA through
// NODE_EXTRA_CA_CERTS, an in-process client through its `ca` option.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  /** The CA's certificate (PEM), and the file it is in. */
  ca: string;
  caFile: string;
  /** The coordinator's certificate and key (PEM). */
  cert: string;
  key: string;
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA and a certificate for `names` (IP addresses or DNS names), valid for two days. */
export function makeTestCa(names: readonly string[]): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'test-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-days', '2', '-subj', '/CN=swarm test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
  openssl(dir, 'req', ...ec, '-subj', '/CN=swarm coordinator', '-keyout', 'server.key', '-out', 'server.csr');
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(join(dir, 'san.ext'), `subjectAltName=${san}\n`);
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { ca: read('ca.crt'), caFile: join(dir, 'ca.crt'), cert: read('server.crt'), key: read('server.key') };
}
