// The desktop app's wallet key: created on first run, kept on disk only encrypted by the OS
// keychain (Electron's safeStorage), and used only here in the main process: pages ask for a
// signature over IPC and get one back; the key never leaves this module.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SafeStorage } from 'electron';
import type { Hex, PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { z } from 'zod';
import type { DesktopWallet, TransactionRequestJson } from '../shared/app/bridge.js';
import { readIfExists, writeFileAtomic } from './user-files.js';

// The async API: Electron 45 deprecates the synchronous encryptString/decryptString/isEncryptionAvailable.
export type KeystoreSafeStorage = Pick<SafeStorage, 'isAsyncEncryptionAvailable' | 'encryptStringAsync' | 'decryptStringAsync' | 'getSelectedStorageBackend'>;

export interface KeystoreOptions {
  safeStorage: KeystoreSafeStorage;
  /** The folder the key file lives in (the app's userData). */
  dir: string;
  platform?: NodeJS.Platform;
  log?: (line: string) => void;
}

export const WALLET_FILE = 'wallet.key';

const KeyFileSchema = z.strictObject({
  version: z.literal(1),
  address: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  /** safeStorage's ciphertext of the 0x-hex private key, base64. */
  encryptedKey: z.string().min(1),
});

async function requireEncryption({ safeStorage, platform = process.platform, log = console.warn }: KeystoreOptions): Promise<void> {
  if (!(await safeStorage.isAsyncEncryptionAvailable())) {
    throw new Error(
      'the wallet key cannot be stored: OS encryption (Keychain / DPAPI / Secret Service) is not available, and the key is never written unencrypted. On Linux install and unlock a keyring (gnome-keyring or KWallet) and restart the app',
    );
  }
  if (platform === 'linux' && safeStorage.getSelectedStorageBackend() === 'basic_text') {
    log(
      'warning: no Linux keyring found (safeStorage uses "basic_text"): the wallet key is encrypted with a fixed password, which protects it little. Install gnome-keyring or KWallet.',
    );
  }
}

async function encrypt(safeStorage: KeystoreSafeStorage, key: Hex): Promise<string> {
  return (await safeStorage.encryptStringAsync(key)).toString('base64');
}

async function store(o: KeystoreOptions, file: string, key: Hex): Promise<void> {
  const body = { version: 1, address: privateKeyToAccount(key).address, encryptedKey: await encrypt(o.safeStorage, key) };
  await mkdir(o.dir, { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(body, null, 2)}\n`);
}

// A key file that is there but unreadable is never replaced: the funds of its address would be lost.
function unreadable(file: string, why: string): Error {
  return new Error(`the wallet key file ${file} is unreadable (${why}); it was left untouched. Move it away to create a new key (the old address's funds stay with the old key).`);
}

async function load(o: KeystoreOptions, file: string): Promise<Hex | undefined> {
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  let parsed: z.output<typeof KeyFileSchema>;
  try {
    parsed = KeyFileSchema.parse(JSON.parse(text));
  } catch {
    throw unreadable(file, 'not a wallet key file');
  }
  let decrypted: { result: string; shouldReEncrypt: boolean };
  try {
    decrypted = await o.safeStorage.decryptStringAsync(Buffer.from(parsed.encryptedKey, 'base64'));
  } catch (error) {
    throw unreadable(file, `the OS keychain could not decrypt it: ${(error as Error).message}`);
  }
  const key = decrypted.result;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw unreadable(file, 'it decrypts to something other than a private key');
  const hex = key as Hex;
  if (privateKeyToAccount(hex).address.toLowerCase() !== parsed.address.toLowerCase()) throw unreadable(file, 'the key does not match the address recorded with it');
  if (decrypted.shouldReEncrypt) await store(o, file, hex); // the keychain rotated its key
  return hex;
}

/** The wallet of `dir`/wallet.key, created (and stored encrypted) on the first call. */
export async function openKeystore(o: KeystoreOptions): Promise<DesktopWallet> {
  await requireEncryption(o);
  const file = join(o.dir, WALLET_FILE);
  let key = await load(o, file);
  if (!key) {
    key = generatePrivateKey();
    await store(o, file, key);
    (o.log ?? console.log)(`created a wallet key for ${privateKeyToAccount(key).address} in ${file} (encrypted by the OS keychain)`);
  }
  return walletOf(privateKeyToAccount(key));
}

function walletOf(account: PrivateKeyAccount): DesktopWallet {
  return {
    // Async all through: a bad input rejects the promise rather than throwing at the caller.
    address: async () => account.address,
    signTransaction: async (tx) => account.signTransaction(eip1559(tx)),
    signMessage: async (message) => account.signMessage({ message }),
    signTypedData: async (json) => account.signTypedData(parseTypedData(json)),
  };
}

/** An EIP-1559 transaction from its IPC form (decimal strings for the bigints). */
export function eip1559(tx: TransactionRequestJson) {
  return {
    type: 'eip1559' as const,
    chainId: tx.chainId,
    to: tx.to,
    data: tx.data,
    value: BigInt(tx.value ?? '0'),
    nonce: tx.nonce,
    gas: BigInt(tx.gas),
    maxFeePerGas: BigInt(tx.maxFeePerGas),
    maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas),
  };
}

const TypedDataJsonSchema = z.strictObject({
  domain: z.record(z.string(), z.unknown()).default({}),
  types: z.record(z.string(), z.array(z.strictObject({ name: z.string(), type: z.string() }))),
  primaryType: z.string(),
  message: z.record(z.string(), z.unknown()),
});
type TypeMap = Record<string, { name: string; type: string }[]>;

const DOMAIN_TYPES: TypeMap['EIP712Domain'] = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
  { name: 'salt', type: 'bytes32' },
];

// JSON has no bigint: (u)intN fields arrive as decimal strings and are turned back here, by type.
function revive(type: string, value: unknown, types: TypeMap): unknown {
  const array = /^(.*)\[\d*\]$/.exec(type);
  if (array) return Array.isArray(value) ? value.map((v) => revive(array[1], v, types)) : value;
  const struct = types[type];
  if (struct && typeof value === 'object' && value !== null) return reviveStruct(struct, value as Record<string, unknown>, types);
  if (/^u?int\d*$/.test(type) && typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return value;
}

function reviveStruct(fields: TypeMap[string], value: Record<string, unknown>, types: TypeMap): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(fields.find((f) => f.name === k)?.type ?? '', v, types)]));
}

/** EIP-712 data from JSON with decimal-string bigints; viem checks it against its types when signing. */
export function parseTypedData(json: string) {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new Error(`typed data is not JSON: ${(error as Error).message}`);
  }
  const r = TypedDataJsonSchema.safeParse(raw);
  if (!r.success) throw new Error(`typed data needs domain, types, primaryType and message: ${z.prettifyError(r.error)}`);
  const { types, primaryType } = r.data;
  if (!(primaryType in types)) throw new Error(`typed data: primaryType "${primaryType}" is not among its types`);
  return {
    domain: reviveStruct(types.EIP712Domain ?? DOMAIN_TYPES, r.data.domain, types),
    types,
    primaryType,
    message: reviveStruct(types[primaryType], r.data.message, types),
  };
}
