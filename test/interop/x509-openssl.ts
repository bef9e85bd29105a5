/**
 * Test PKI made with the `openssl` command line (the tool device makers use), in a temp dir:
 * root CAs, intermediates and device certificates with RSA-2048 or P-256 keys.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type KeyType = 'rsa' | 'ec'

export interface Issued {
  readonly certPath: string
  readonly keyPath: string
  readonly pem: string
  readonly keyPem: string
}

export class OpensslPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'provisio-x509-'))
  #n = 0

  #run(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] })
  }

  #key(type: KeyType, name: string): string {
    const keyPath = join(this.dir, `${name}.key`)
    if (type === 'rsa') this.#run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyPath])
    else this.#run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath])
    return keyPath
  }

  #issued(certPath: string, keyPath: string): Issued {
    return { certPath, keyPath, pem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') }
  }

  #ext(lines: string[]): string {
    const path = join(this.dir, `ext-${++this.#n}.cnf`)
    writeFileSync(path, lines.join('\n') + '\n')
    return path
  }

  /** A self-signed root CA. */
  root(cn: string, type: KeyType): Issued {
    const name = `root-${++this.#n}`
    const keyPath = this.#key(type, name)
    const certPath = join(this.dir, `${name}.pem`)
    this.#run(['req', '-x509', '-new', '-key', keyPath, '-out', certPath, '-days', '30', '-subj', `/CN=${cn}`, '-sha256',
      '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    return this.#issued(certPath, keyPath)
  }

  /** A certificate signed by `issuer`: an intermediate CA or a device (clientAuth) certificate. */
  issue(cn: string, type: KeyType, issuer: Issued, options: { ca?: boolean; days?: number } = {}): Issued {
    const name = `cert-${++this.#n}`
    const keyPath = this.#key(type, name)
    const csr = join(this.dir, `${name}.csr`)
    const certPath = join(this.dir, `${name}.pem`)
    this.#run(['req', '-new', '-key', keyPath, '-out', csr, '-subj', `/CN=${cn}`])
    const ext = options.ca
      ? this.#ext(['basicConstraints=critical,CA:true', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'])
      : this.#ext(['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth', 'authorityKeyIdentifier=keyid'])
    this.#run(['x509', '-req', '-in', csr, '-CA', issuer.certPath, '-CAkey', issuer.keyPath, '-set_serial', String(1000 + this.#n),
      '-days', String(options.days ?? 30), '-sha256', '-extfile', ext, '-out', certPath])
    return this.#issued(certPath, keyPath)
  }

  /** A self-signed device certificate (individual enrollments). */
  selfSignedDevice(cn: string, type: KeyType): Issued {
    const name = `self-${++this.#n}`
    const keyPath = this.#key(type, name)
    const certPath = join(this.dir, `${name}.pem`)
    this.#run(['req', '-x509', '-new', '-key', keyPath, '-out', certPath, '-days', '30', '-subj', `/CN=${cn}`, '-sha256',
      '-addext', 'extendedKeyUsage=clientAuth'])
    return this.#issued(certPath, keyPath)
  }

  /** The proof-of-possession certificate: subject CN = `code`, signed by the CA's key (D-pop). */
  proofOfPossession(code: string, ca: Issued): Issued {
    return this.issue(code, 'ec', ca)
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}
