// Messages in and out of the coordinator as text frames. Parsing never throws: a bad message becomes
// `{ ok: false, error }` with a sentence a human can act on, because a volunteer's client must get
// told what was wrong instead of being dropped.
import type { z } from 'zod';
import { formatIssues } from '../base/issues.js';
import { utf8Length } from '../base/json.js';
import { type ClientMessage, ClientMessageSchema, ClientMessageSchemas, MAX_MESSAGE_BYTES, type ServerMessage, ServerMessageSchema, ServerMessageSchemas } from './protocol.js';

export type Parsed<T> = { ok: true; msg: T } | { ok: false; error: string };
export type Encoded = { ok: true; text: string } | { ok: false; error: string };

// Dispatching on `type` ourselves (instead of through the union) turns "no matching discriminator"
// into a message listing the valid types, and field errors into ones that name the message type.
function parseWith<T>(text: unknown, schemas: Record<string, z.ZodType>, side: string): Parsed<T> {
  if (typeof text !== 'string') return { ok: false, error: 'message must be a JSON text frame' };
  const size = utf8Length(text);
  if (size > MAX_MESSAGE_BYTES) return { ok: false, error: `message is ${size} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `message is not valid JSON (${(e as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'message must be a JSON object with a "type" field' };
  }
  const type = (value as { type?: unknown }).type;
  const known = Object.keys(schemas);
  if (typeof type !== 'string') return { ok: false, error: `message has no string "type" field (expected one of ${known.join(', ')})` };
  if (!Object.hasOwn(schemas, type)) {
    return { ok: false, error: `unknown ${side} message type "${type.slice(0, 64)}" (expected one of ${known.join(', ')})` };
  }
  const r = schemas[type].safeParse(value);
  if (!r.success) return { ok: false, error: `invalid ${type} message: ${formatIssues(type, r.error)}` };
  return { ok: true, msg: r.data as T };
}

function encodeWith(msg: unknown, schema: z.ZodType, side: string): Encoded {
  const r = schema.safeParse(msg);
  const type = typeof (msg as { type?: unknown })?.type === 'string' ? (msg as { type: string }).type : side;
  if (!r.success) return { ok: false, error: `invalid ${type} message: ${formatIssues(type, r.error)}` };
  const textOut = JSON.stringify(r.data);
  const size = utf8Length(textOut);
  if (size > MAX_MESSAGE_BYTES) return { ok: false, error: `${type} message is ${size} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit` };
  return { ok: true, text: textOut };
}

/** Parse a text frame received by the coordinator. Never throws. */
export function parseClientMessage(text: string): Parsed<ClientMessage> {
  return parseWith<ClientMessage>(text, ClientMessageSchemas, 'client');
}

/** Parse a text frame received by a peer. Never throws. */
export function parseServerMessage(text: string): Parsed<ServerMessage> {
  return parseWith<ServerMessage>(text, ServerMessageSchemas, 'server');
}

/** Validate and serialise a message a peer is about to send. Never throws. */
export function encodeClientMessage(msg: ClientMessage): Encoded {
  return encodeWith(msg, ClientMessageSchema, 'client');
}

/** Validate and serialise a message the coordinator is about to send. Never throws. */
export function encodeServerMessage(msg: ServerMessage): Encoded {
  return encodeWith(msg, ServerMessageSchema, 'server');
}
