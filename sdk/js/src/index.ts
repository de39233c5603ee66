/**
 * dream-api: the JavaScript/TypeScript client of a dream-api server.
 *
 * ```js
 * import { DreamAPI } from 'dream-api';
 * const dream = new DreamAPI(); // DREAM_SECRET_KEY, DREAM_API_URL
 * const customer = await dream.customers.create({ email, plan: 'free' });
 * await dream.track(customer.id); // Enforces limits
 * const checkout = await dream.checkout(customer.id, 'pro'); // Their Stripe
 * ```
 *
 * Zero dependencies, built on `fetch`: Node >= 18, Bun, Deno, Cloudflare
 * Workers. Every POST carries an `Idempotency-Key` (generated, or yours),
 * and every retry (network errors, 5xx, 409 `idempotency_in_progress`,
 * 429 `rate_limited`) sends the same key, so nothing is counted twice.
 */

export const VERSION = '0.1.0';
export const DEFAULT_BASE_URL = 'http://127.0.0.1:8787';

// ---------------------------------------------------------------- shapes

export type Metadata = Record<string, unknown>;

export interface Usage {
  feature: string;
  count: number;
  /** -1 is unlimited. */
  limit: number;
  /** -1 is unlimited. */
  remaining: number;
  /** Set in the answers of track and check. */
  plan?: string;
  periodStart: string;
  periodEnd: string;
}

export interface Subscription {
  id: string;
  status: string;
  pastDue: boolean;
  priceId: string | null;
  amount: number;
  currency: string;
  interval: string;
  intervalCount: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  cancelAtPeriodEnd: boolean;
  lastPaymentFailedAt: string | null;
  updatedAt: string;
}

export interface Customer {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  plan: string;
  publishableKey: string;
  metadata: Metadata;
  stripeCustomerId: string | null;
  stripeAccountId?: string;
  subscription?: Subscription;
  createdAt: string;
}

export interface CustomerWithUsage extends Customer {
  usage: Usage[];
}

/** The body of POST /api/customers (schema CustomerCreate). */
export interface CustomerCreateParams {
  email?: string;
  clerkUserId?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  /** A tier name; defaults to free, or the first tier. */
  plan?: string | null;
  password?: string | null;
  metadata?: Metadata | null;
}

/** The body of PATCH /api/customers/{id} (schema CustomerUpdate). */
export interface CustomerUpdateParams {
  email?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  plan?: string | null;
  /** Merged into the stored metadata; a key set to null is removed. */
  metadata?: Metadata | null;
  /** A new password for dream-api's own end-user sign-in (servers without Clerk); the customer's sessions end. */
  password?: string | null;
}

export interface ListParams {
  /** Page size, 1..100 (the server's default is 20; list() asks for 100). */
  limit?: number;
  /** The id of the last object of the previous page. */
  startingAfter?: string;
}

export interface CustomerListParams extends ListParams {
  /** Only the customer with this email (case-insensitive). */
  email?: string;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

/** The body of POST /api/track and /api/check (schema TrackRequest). */
export interface TrackParams {
  customerId: string;
  /** Defaults to "requests". */
  feature?: string | null;
  /** An integer >= 1; defaults to 1. */
  quantity?: number | null;
  metadata?: Metadata | null;
}

/** One event of trackBatch (schema TrackBatchEvent): TrackParams and a key of its own. */
export interface TrackBatchEvent extends TrackParams {
  /** Counts the event once: sent again with it (within 24 h, in any batch), it answers its first answer. */
  idempotencyKey?: string | null;
}

/**
 * What the server answered for one event of trackBatch: the body track would
 * answer for it, with its HTTP status. 200 is a TrackResult; anything else an
 * error body (429 tier_limit_reached with `usage`: nothing counted; 404
 * not_found, 422 unknown_feature or validation_failed, 429 rate_limited, 409
 * idempotency_conflict, 503 plugin_error).
 */
export type TrackBatchResult =
  | (TrackResult & { status: 200 })
  | {
      status: 404 | 409 | 422 | 429 | 503;
      error: string;
      code: string;
      message: string;
      requestId: string;
      fields?: FieldError[];
      usage?: Usage & { plan: string };
      plugin?: PluginResult | null;
    };

export interface PluginResult {
  version: string;
  message?: string | null;
  fallback?: boolean;
}

export interface TrackResult {
  success: true;
  allowed: boolean;
  usage: Usage & { plan: string };
  plugin: PluginResult | null;
}

export interface UsageReport {
  customerId: string;
  plan: string;
  usage: Usage[];
}

/** Query of `usage.history`. */
export interface UsageHistoryParams {
  customerId: string;
  /** Only this feature's periods. */
  feature?: string;
  /** Only periods that end after it: an RFC 3339 time, a YYYY-MM-DD date (UTC) or a Date. */
  from?: string | Date;
  /** Only periods that start at or before it (a date: the whole day). */
  to?: string | Date;
  /** Rows at most, 1 to 100 (the server's default: 20). */
  limit?: number;
}

/**
 * One feature in one past period. limit and remaining are those of the
 * customer's plan as it is now (null when it does not meter the feature),
 * not necessarily the ones in force then.
 */
export interface PastUsage {
  feature: string;
  count: number;
  /** -1 is unlimited. */
  limit: number | null;
  remaining: number | null;
  periodStart: string;
  periodEnd: string;
}

/** A customer's past periods, newest first; hasMore: narrow from/to to see older ones. */
export interface UsageHistory {
  data: PastUsage[];
  hasMore: boolean;
}

/** `dream.usage(customerId)` and `dream.usage.history({ customerId, … })`. */
export interface UsageCalls {
  /** The customer's usage of every metered feature of its plan, this period. */
  (customerId: string): Promise<UsageReport>;
  /** The customer's past periods (the current one excluded), newest first. */
  history(params: UsageHistoryParams): Promise<UsageHistory>;
}

export type Interval = 'day' | 'week' | 'month' | 'year';

export interface Tier {
  name: string;
  displayName: string;
  price: number;
  currency: string;
  interval: Interval;
  limits: Record<string, number>;
  features: Record<string, boolean>;
  rateLimitPerMinute: number;
  priceId: string | null;
  productId: string | null;
}

/** A tier as given to tiers.replace (schema TierInput); only name is required. */
export interface TierInput {
  name: string;
  displayName?: string | null;
  price?: number | null;
  currency?: string | null;
  interval?: Interval | null;
  /** Shorthand for limits.requests; -1 is unlimited. */
  limit?: number | null;
  limits?: Record<string, number> | null;
  features?: Record<string, boolean> | null;
  rateLimitPerMinute?: number | null;
  /** Ignored by the server. */
  priceId?: string | null;
  /** Ignored by the server. */
  productId?: string | null;
}

export interface CheckoutOptions {
  successUrl?: string | null;
  cancelUrl?: string | null;
  /** Also passed on to Stripe; generated when absent. */
  idempotencyKey?: string;
}

export interface CheckoutSession {
  url: string;
  sessionId: string;
}

export interface PortalOptions {
  returnUrl?: string | null;
  idempotencyKey?: string;
}

export interface PortalSession {
  url: string;
}

export interface KeyRecord {
  id: string;
  platformId: string;
  mode: 'live' | 'test';
  publishableKey: string;
  secretKeyHint: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
}

/** The body of POST /api/platform/keys (schema KeyCreate). */
export interface KeyCreateParams {
  /** The key record (key_…) to replace. */
  rotate?: string | null;
  /** How long the rotated secret keeps working; default 24. */
  gracePeriodHours?: number | null;
}

export interface KeyCreated {
  key: KeyRecord;
  publishableKey: string;
  /** Shown only once. */
  secretKey: string;
}

export interface PluginVersion {
  version: string;
  sha256: string;
  size: number;
  uploadedAt: string;
}

export interface PluginStatus extends PluginVersion {
  active: boolean;
  onError: 'builtin' | 'deny';
}

export interface PluginOverview {
  active: PluginVersion | null;
  onError: 'builtin' | 'deny';
  history: PluginVersion[];
}

export interface PluginUploadOptions {
  /** What decides when the plugin fails; the server's default is builtin. */
  onError?: 'builtin' | 'deny';
  idempotencyKey?: string;
}

/** The body of POST /api/platform/plugin/dry-run (schema DryRunRequest). */
export interface DryRunParams {
  plan?: string | null;
  feature?: string | null;
  quantity?: number | null;
  usage?: number | null;
  limit?: number | null;
  customerId?: string | null;
  metadata?: Metadata | null;
  /** The customer's plugin state, base64 (at most 1024 bytes). */
  state?: string | null;
}

export interface DryRunResult {
  allowed: boolean;
  cost: number;
  limit: number;
  message: string | null;
  state: string;
  durationMicros: number;
  log: string[];
}

export interface Money {
  amount: number;
  currency: string;
}

export interface Stats {
  mode: 'live' | 'test';
  customers: number;
  customersPerPlan: Record<string, number>;
  subscriptions: { active: number; trialing: number; pastDue: number; canceled: number };
  mrr: Money[];
  days?: { date: string; feature: string; count: number; denied: number }[];
  generatedAt: string;
}

export interface FieldError {
  field: string;
  message: string;
}

/** The body of POST /api/platform/webhooks (schema WebhookCreate). */
export interface WebhookCreateParams {
  /** https (http and private addresses only when the server sets DREAM_WEBHOOK_ALLOW_PRIVATE=1). */
  url: string;
  /** Event types to receive; absent or empty means all ('*'). */
  events?: string[];
  description?: string;
}

/** The body of PATCH /api/platform/webhooks/{id} (schema WebhookUpdate): absent fields stay. */
export interface WebhookUpdateParams {
  url?: string;
  events?: string[];
  description?: string;
  /** true turns on an endpoint the server disabled; false pauses deliveries. */
  enabled?: boolean;
}

/** A URL that receives the platform's events in one mode (never its secret). */
export interface WebhookEndpoint {
  id: string;
  url: string;
  events: string[];
  description: string;
  enabled: boolean;
  createdAt: string;
  /** Why the server disabled the endpoint (every delivery failed for 3 days). */
  disabledReason?: string;
  /** The first failed attempt since the last success. */
  failingSince?: string;
}

/** An endpoint with its signing secret (whsec_…), shown only by create and rotateSecret. */
export interface WebhookCreated {
  endpoint: WebhookEndpoint;
  secret: string;
}

/** One event sent to an endpoint, with its last attempt. */
export interface WebhookDelivery {
  eventId: string;
  endpointId: string;
  type: string;
  state: 'pending' | 'delivered' | 'failed';
  /** Attempts made so far. */
  attempt: number;
  /** HTTP status of the last attempt; 0 when it got no answer. */
  status: number;
  latencyMs: number;
  error: string;
  nextRetryAt: string | null;
  createdAt: string;
  attemptedAt: string | null;
}

/**
 * The request fields of every endpoint with a JSON body, by the operationId
 * of http/openapi.yaml: what the parameter types above allow. A test holds
 * them to the server's spec.
 */
export const REQUEST_FIELDS = {
  createCustomer: ['email', 'clerkUserId', 'firstName', 'lastName', 'plan', 'password', 'metadata'],
  updateCustomer: ['email', 'firstName', 'lastName', 'plan', 'metadata', 'password'],
  track: ['customerId', 'feature', 'quantity', 'metadata'],
  check: ['customerId', 'feature', 'quantity', 'metadata'],
  trackBatch: ['events'],
  putPlatformTiers: ['tiers'],
  createKey: ['rotate', 'gracePeriodHours'],
  rollbackPlugin: ['version'],
  dryRunPlugin: ['plan', 'feature', 'quantity', 'usage', 'limit', 'customerId', 'metadata', 'state'],
  createCheckout: ['customerId', 'tier', 'successUrl', 'cancelUrl'],
  createCustomerPortal: ['customerId', 'returnUrl'],
  meCheckout: ['tier', 'successUrl', 'cancelUrl'],
  signIn: ['email', 'password', 'publishableKey'],
  refreshSession: ['refreshToken', 'publishableKey'],
  signOut: ['refreshToken', 'publishableKey'],
  resetPassword: ['token', 'password', 'publishableKey'],
  createWebhook: ['url', 'events', 'description'],
  updateWebhook: ['url', 'events', 'description', 'enabled'],
  rotateWebhookSecret: [],
  testWebhook: [],
  retryWebhookDelivery: [],
} as const;

// ---------------------------------------------------------------- errors

/** An error answer of the API: one flat JSON object with a code. */
export class DreamAPIError extends Error {
  /** The HTTP status; 0 for a network error. */
  readonly status: number;
  /** The machine-readable code, e.g. "validation_failed". */
  readonly code: string;
  /** The request's id (req_…), for the server's log. */
  readonly requestId: string | null;
  /** Every invalid field of a validation_failed answer. */
  readonly fields: FieldError[];
  /** The short summary (the body's "error"). */
  readonly summary: string;
  /** Retry-After in seconds, when the server sent one. */
  readonly retryAfter: number | null;
  /** The whole error body. */
  readonly body: Record<string, unknown>;

  constructor(status: number, body: Record<string, unknown>, requestId: string | null, retryAfter: number | null) {
    super(typeof body.message === 'string' ? body.message : `HTTP ${status}`);
    this.name = 'DreamAPIError';
    this.status = status;
    this.code = typeof body.code === 'string' ? body.code : `http_${status}`;
    this.summary = typeof body.error === 'string' ? body.error : '';
    this.requestId = typeof body.requestId === 'string' ? body.requestId : requestId;
    this.fields = Array.isArray(body.fields) ? (body.fields as FieldError[]) : [];
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** The 429 tier_limit_reached answer of track: nothing was counted. */
export class TierLimitError extends DreamAPIError {
  /** The usage that was not exceeded. */
  readonly usage: Usage & { plan: string };
  /** The limit plugin that decided; null for built-in limits. */
  readonly plugin: PluginResult | null;

  constructor(status: number, body: Record<string, unknown>, requestId: string | null, retryAfter: number | null) {
    super(status, body, requestId, retryAfter);
    this.name = 'TierLimitError';
    this.usage = body.usage as Usage & { plan: string };
    this.plugin = (body.plugin as PluginResult | null | undefined) ?? null;
  }
}

/** A request that never got an answer (network error or timeout). */
export class DreamConnectionError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'DreamConnectionError';
  }
}

// ---------------------------------------------------------------- transport

export interface DreamAPIOptions {
  /** The platform's secret key. Defaults to process.env.DREAM_SECRET_KEY. */
  secretKey?: string;
  /** Defaults to DREAM_API_URL, then http://127.0.0.1:8787. */
  baseUrl?: string;
  /** Bounds each attempt; default 30 000 ms. */
  timeoutMs?: number;
  /** Retries after the first attempt; default 2. */
  maxRetries?: number;
  /** The longest Retry-After waited for; longer ends the call. Default 60 000 ms. */
  maxRetryWaitMs?: number;
  /** The fetch to use; defaults to globalThis.fetch. */
  fetch?: typeof fetch;
}

interface Req {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined | null>;
  body?: unknown;
  raw?: Uint8Array | ArrayBuffer;
  contentType?: string;
  idempotencyKey?: string;
  auth?: string;
  /** false: never resent (a sign-in or a refresh: a resent refresh token would end its session). */
  retry?: boolean;
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === '' ? undefined : v;
}

/** A fresh random Idempotency-Key. */
export function newIdempotencyKey(): string {
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  const b = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  return 'idk_' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function parseRetryAfter(v: string | null): number | null {
  if (!v) return null;
  const n = Number(v.trim());
  if (Number.isFinite(n) && n >= 0) return n;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, (t - Date.now()) / 1000);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Exponential backoff with jitter: a random wait in [d/2, d], d = 500 ms * 2^(n-1), at most 8 s. */
export function backoffMs(n: number): number {
  const d = Math.min(500 * 2 ** (n - 1), 8000);
  return d / 2 + Math.random() * (d / 2);
}

class Transport {
  readonly key: string;
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly maxRetryWaitMs: number;
  readonly fetch: typeof fetch;

  constructor(o: DreamAPIOptions & { key?: string }) {
    this.key = (o.key ?? '').trim();
    this.baseUrl = (o.baseUrl ?? env('DREAM_API_URL') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxRetries = Math.max(0, o.maxRetries ?? 2);
    this.maxRetryWaitMs = o.maxRetryWaitMs ?? 60_000;
    const f = o.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new Error('dream-api: no fetch (Node >= 18, or pass options.fetch)');
    this.fetch = f.bind(globalThis);
  }

  async request<T>(r: Req): Promise<T> {
    const idem = r.method === 'POST' || r.method === 'PUT' ? (r.idempotencyKey ?? newIdempotencyKey()) : undefined;
    let url = this.baseUrl + r.path;
    if (r.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(r.query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
      const s = q.toString();
      if (s) url += '?' + s;
    }
    const headers: Record<string, string> = { Accept: 'application/json' };
    const auth = r.auth ?? this.key;
    if (auth) headers.Authorization = 'Bearer ' + auth;
    if (idem) headers['Idempotency-Key'] = idem;
    let body: BodyInit | undefined;
    if (r.raw !== undefined) {
      body = r.raw as BodyInit;
      headers['Content-Type'] = r.contentType ?? 'application/octet-stream';
    } else if (r.body !== undefined) {
      body = JSON.stringify(r.body);
      headers['Content-Type'] = 'application/json';
    }
    for (let attempt = 0; ; attempt++) {
      let res: Response | undefined;
      let text = '';
      let netErr: unknown;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
      try {
        res = await this.fetch(url, { method: r.method, headers, body, signal: ctl.signal });
        text = await res.text();
      } catch (e) {
        netErr = e;
        res = undefined;
      } finally {
        clearTimeout(timer);
      }
      if (res && res.status >= 200 && res.status < 300) {
        return (text ? JSON.parse(text) : undefined) as T;
      }
      let err: DreamAPIError | undefined;
      if (res) {
        let b: Record<string, unknown> = {};
        try {
          const j = JSON.parse(text);
          if (j && typeof j === 'object' && !Array.isArray(j)) b = j;
        } catch {
          /* not JSON: a proxy's page */
        }
        if (typeof b.code !== 'string') b = { code: `http_${res.status}`, message: `the server answered ${res.status}`, error: res.statusText };
        const ra = parseRetryAfter(res.headers.get('Retry-After'));
        const rid = res.headers.get('X-Request-Id');
        err = b.code === 'tier_limit_reached' && b.usage ? new TierLimitError(res.status, b, rid, ra) : new DreamAPIError(res.status, b, rid, ra);
      }
      const wait = this.retryWait(r, attempt, res, err);
      if (wait === null) {
        if (err) throw err;
        throw new DreamConnectionError(`dream-api: ${r.method} ${r.path}: ${netErr instanceof Error ? netErr.message : String(netErr)}`, netErr);
      }
      await sleep(wait);
    }
  }

  /** The wait before retrying, or null when the call ends here. */
  private retryWait(r: Req, attempt: number, res: Response | undefined, err: DreamAPIError | undefined): number | null {
    if (attempt >= this.maxRetries || r.retry === false) return null;
    const backoff = backoffMs(attempt + 1);
    // DELETE is not retried after a network error or a 5xx: a second delete
    // of a deleted object would be a confusing 404.
    const resendable = r.method !== 'DELETE';
    if (!res || !err) return resendable ? backoff : null;
    const ra = err.retryAfter;
    if ((res.status === 429 && err.code === 'rate_limited') || (res.status === 409 && err.code === 'idempotency_in_progress')) {
      if (ra === null) return backoff;
      return ra * 1000 > this.maxRetryWaitMs ? null : ra * 1000;
    }
    if (res.status >= 500 && resendable) return ra !== null && ra * 1000 <= this.maxRetryWaitMs ? ra * 1000 : backoff;
    return null;
  }
}

/**
 * A listing that is both awaitable (the first page) and async-iterable (every
 * item, page by page). cursor names the startingAfter of an item (default its id).
 */
export class PageIterator<T> implements AsyncIterable<T>, PromiseLike<Page<T>> {
  constructor(
    private readonly fetchPage: (startingAfter?: string) => Promise<Page<T>>,
    private readonly start?: string,
    private readonly cursor: (item: T) => string = (item) => (item as { id: string }).id,
  ) {}

  /** Every page, fetched as the loop asks for it. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    let after = this.start;
    for (;;) {
      const page = await this.fetchPage(after);
      yield page;
      if (!page.hasMore || page.data.length === 0) return;
      after = this.cursor(page.data[page.data.length - 1]);
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.data;
  }

  then<A = Page<T>, B = never>(ok?: ((p: Page<T>) => A | PromiseLike<A>) | null, fail?: ((e: unknown) => B | PromiseLike<B>) | null): PromiseLike<A | B> {
    return this.fetchPage(this.start).then(ok, fail);
  }
}

const enc = encodeURIComponent;

/** Keeps the members of o that are not undefined. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------- webhooks

/** An outgoing webhook event of dream-api; data depends on type. */
export interface WebhookEvent<D = Record<string, unknown>> {
  id: string;
  type: string;
  createdAt: string;
  mode: 'live' | 'test';
  data: D;
}

/** A webhook delivery that is not signed with the secret, or was signed too long ago. */
export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

type Subtle = {
  importKey(f: 'raw', k: Uint8Array, a: { name: string; hash: string }, e: boolean, u: string[]): Promise<unknown>;
  sign(a: string, k: unknown, d: Uint8Array): Promise<ArrayBuffer>;
};

async function subtle(): Promise<Subtle> {
  const c = (globalThis as { crypto?: { subtle?: Subtle } }).crypto;
  if (c?.subtle) return c.subtle;
  const name = 'node:crypto'; // Node 18 has WebCrypto only as a module
  const m = (await import(name)) as { webcrypto: { subtle: Subtle } };
  return m.webcrypto.subtle;
}

/**
 * Checks the Dream-Signature header of a webhook delivery
 * (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per valid
 * secret) and resolves the event. `body` must be the raw request body;
 * `toleranceSec` (default 300) bounds the age of t. Rejects with
 * WebhookSignatureError otherwise.
 */
export async function verifyWebhook<D = Record<string, unknown>>(
  body: string | Uint8Array, header: string | null | undefined, secret: string,
  options: { toleranceSec?: number; nowSec?: number } = {},
): Promise<WebhookEvent<D>> {
  let t = '';
  const sigs: string[] = [];
  for (const part of (header ?? '').split(',')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === 't') t = v;
    else if (k === 'v1') sigs.push(v.toLowerCase());
  }
  if (!/^\d+$/.test(t) || sigs.length === 0) throw new WebhookSignatureError('the Dream-Signature header has no t= and v1=');
  const now = options.nowSec ?? Date.now() / 1000;
  const tolerance = options.toleranceSec ?? 300;
  if (Math.abs(now - Number(t)) > tolerance) throw new WebhookSignatureError(`signed at ${t}, outside the tolerance of ${tolerance} s`);
  const te = new TextEncoder();
  const raw = typeof body === 'string' ? te.encode(body) : body;
  const msg = new Uint8Array(t.length + 1 + raw.length);
  msg.set(te.encode(t + '.'), 0);
  msg.set(raw, t.length + 1);
  const s = await subtle();
  const key = await s.importKey('raw', te.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const want = Array.from(new Uint8Array(await s.sign('HMAC', key, msg)), (x) => x.toString(16).padStart(2, '0')).join('');
  // Constant time over the candidates.
  let ok = false;
  for (const sig of sigs) {
    let diff = sig.length ^ want.length;
    for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ (sig.charCodeAt(i) || 0);
    ok = ok || diff === 0;
  }
  if (!ok) throw new WebhookSignatureError('no v1 signature matches the secret');
  return JSON.parse(typeof body === 'string' ? body : new TextDecoder().decode(body)) as WebhookEvent<D>;
}

// ---------------------------------------------------------------- DreamAPI

/** The server-side client of one platform's secret key. */
export class DreamAPI {
  /** `await DreamAPI.webhooks.verify(rawBody, req.headers['dream-signature'], secret)` */
  static readonly webhooks = { verify: verifyWebhook };

  readonly customers: Customers;
  readonly tiers: Tiers;
  readonly keys: Keys;
  readonly plugin: Plugin;
  /** The outgoing webhook endpoints; `dream.webhooks.verify` is `DreamAPI.webhooks.verify`. */
  readonly webhooks: Webhooks;
  /** `usage(customerId)`: this period; `usage.history({ customerId, feature?, from?, to?, limit? })`: past periods. */
  readonly usage: UsageCalls;
  private readonly t: Transport;

  constructor(options: DreamAPIOptions = {}) {
    this.t = new Transport({ ...options, key: options.secretKey ?? env('DREAM_SECRET_KEY') });
    this.customers = new Customers(this.t);
    this.tiers = new Tiers(this.t);
    this.keys = new Keys(this.t);
    this.plugin = new Plugin(this.t);
    this.webhooks = new Webhooks(this.t);
    const t = this.t;
    const when = (d: string | Date | undefined) => (d instanceof Date ? d.toISOString() : d);
    this.usage = Object.assign(
      (customerId: string): Promise<UsageReport> => t.request({ method: 'GET', path: '/api/usage', query: { customerId } }),
      {
        history: (p: UsageHistoryParams): Promise<UsageHistory> =>
          t.request({ method: 'GET', path: '/api/usage/history', query: { customerId: p.customerId, feature: p.feature, from: when(p.from), to: when(p.to), limit: p.limit } }),
      },
    );
  }

  /** The base URL calls go to. */
  get baseUrl(): string {
    return this.t.baseUrl;
  }

  /**
   * Counts usage, enforcing the plan's limit: at the limit it rejects with a
   * TierLimitError and counts nothing. A customer id counts one "requests".
   */
  track(customer: string | (TrackParams & { idempotencyKey?: string })): Promise<TrackResult> {
    return this.decide('/api/track', customer);
  }

  /**
   * Counts up to 1 000 events in one request: the server decides them in
   * order, exactly as if each were tracked alone, and makes all of them
   * durable in one commit. Resolves one result per event, in order; an
   * event's own error (its limit reached, an unknown customer, a bad
   * quantity) is its result, not a rejection, which is kept for the request
   * as a whole (a bad body, the key, quotas). A retry replays the first
   * answer (one Idempotency-Key, generated unless given).
   */
  async trackBatch(events: TrackBatchEvent[], options: { idempotencyKey?: string } = {}): Promise<TrackBatchResult[]> {
    const r = await this.t.request<{ results: TrackBatchResult[] }>({
      method: 'POST', path: '/api/track/batch', body: { events: events.map((e) => defined(e)) }, idempotencyKey: options.idempotencyKey,
    });
    return r.results;
  }

  /** The decision track would make, counting nothing; resolves { allowed: false } on a denial. */
  check(customer: string | (TrackParams & { idempotencyKey?: string })): Promise<TrackResult> {
    return this.decide('/api/check', customer);
  }

  private decide(path: string, c: string | (TrackParams & { idempotencyKey?: string })): Promise<TrackResult> {
    const { idempotencyKey, ...body } = typeof c === 'string' ? { customerId: c, idempotencyKey: undefined } : c;
    return this.t.request<TrackResult>({ method: 'POST', path, body: defined(body), idempotencyKey });
  }


  /** A Stripe Checkout for the customer to subscribe to tier, on the platform's own Stripe. */
  checkout(customerId: string, tier: string, options: CheckoutOptions = {}): Promise<CheckoutSession> {
    const { idempotencyKey, ...rest } = options;
    return this.t.request({ method: 'POST', path: '/api/create-checkout', body: defined({ customerId, tier, ...rest }), idempotencyKey });
  }

  /** A Stripe billing portal session for the customer. */
  portal(customerId: string, options: PortalOptions = {}): Promise<PortalSession> {
    const { idempotencyKey, ...rest } = options;
    return this.t.request({ method: 'POST', path: '/api/customer-portal', body: defined({ customerId, ...rest }), idempotencyKey });
  }

  /** Customers, customers per plan, subscriptions and MRR of the key's mode. */
  stats(): Promise<Stats> {
    return this.t.request({ method: 'GET', path: '/api/platform/stats' });
  }
}

class Customers {
  constructor(private readonly t: Transport) {}

  /** Creates a customer; an email already used is a 409 conflict. */
  async create(params: CustomerCreateParams, options: { idempotencyKey?: string } = {}): Promise<Customer> {
    const r = await this.t.request<{ customer: Customer }>({ method: 'POST', path: '/api/customers', body: params, idempotencyKey: options.idempotencyKey });
    return r.customer;
  }

  /** One customer, with its current usage. */
  async get(id: string): Promise<CustomerWithUsage> {
    const r = await this.t.request<{ customer: CustomerWithUsage }>({ method: 'GET', path: '/api/customers/' + enc(id) });
    return r.customer;
  }

  /** Changes the fields given. */
  async update(id: string, params: CustomerUpdateParams): Promise<Customer> {
    const r = await this.t.request<{ customer: Customer }>({ method: 'PATCH', path: '/api/customers/' + enc(id), body: params });
    return r.customer;
  }

  /**
   * A one-time password reset token (30 minutes) for dream-api's own
   * sign-in: send it to the customer (dream-api sends no mail); your reset
   * page calls DreamClient.resetPassword with it.
   */
  passwordReset(id: string, options: { idempotencyKey?: string } = {}): Promise<ResetToken> {
    return this.t.request({ method: 'POST', path: '/api/customers/' + enc(id) + '/password-reset', idempotencyKey: options.idempotencyKey });
  }

  /** Signs a customer out everywhere (dream-api's own sign-in); answers how many sessions ended. */
  revokeSessions(id: string): Promise<{ revoked: number }> {
    return this.t.request({ method: 'DELETE', path: '/api/customers/' + enc(id) + '/sessions' });
  }

  /** Deletes a customer; its usage history is kept. */
  del(id: string): Promise<{ deleted: true; id: string }> {
    return this.t.request({ method: 'DELETE', path: '/api/customers/' + enc(id) });
  }

  /**
   * `await` gives the first page; `for await (const c of dream.customers.list())`
   * walks every customer, a page (default 100) at a time; `.pages()` walks pages.
   */
  list(params: CustomerListParams = {}): PageIterator<Customer> {
    const limit = params.limit ?? 100;
    return new PageIterator<Customer>(
      (startingAfter) => this.t.request({ method: 'GET', path: '/api/customers', query: { limit, startingAfter, email: params.email } }),
      params.startingAfter,
    );
  }
}

class Webhooks {
  constructor(private readonly t: Transport) {}

  /** Checks a delivery's Dream-Signature and resolves its event: verifyWebhook. */
  readonly verify = verifyWebhook;

  /** Registers an endpoint; the signing secret is shown only in this answer. At most 16 per mode. */
  create(params: WebhookCreateParams, options: { idempotencyKey?: string } = {}): Promise<WebhookCreated> {
    return this.t.request({ method: 'POST', path: '/api/platform/webhooks', body: params, idempotencyKey: options.idempotencyKey });
  }

  /** Every endpoint of the key's platform and mode, oldest first (never secrets). */
  async list(): Promise<WebhookEndpoint[]> {
    return (await this.t.request<Page<WebhookEndpoint>>({ method: 'GET', path: '/api/platform/webhooks' })).data;
  }

  /** One endpoint. */
  async get(id: string): Promise<WebhookEndpoint> {
    return (await this.t.request<{ endpoint: WebhookEndpoint }>({ method: 'GET', path: '/api/platform/webhooks/' + enc(id) })).endpoint;
  }

  /** Changes the fields given. */
  async update(id: string, params: WebhookUpdateParams): Promise<WebhookEndpoint> {
    return (await this.t.request<{ endpoint: WebhookEndpoint }>({ method: 'PATCH', path: '/api/platform/webhooks/' + enc(id), body: params })).endpoint;
  }

  /** Deletes an endpoint; its pending deliveries are dropped. */
  del(id: string): Promise<{ deleted: true; id: string }> {
    return this.t.request({ method: 'DELETE', path: '/api/platform/webhooks/' + enc(id) });
  }

  /** A new signing secret, shown only in this answer; for 24 h the old one signs too. */
  rotateSecret(id: string, options: { idempotencyKey?: string } = {}): Promise<WebhookCreated> {
    return this.t.request({ method: 'POST', path: `/api/platform/webhooks/${enc(id)}/rotate-secret`, idempotencyKey: options.idempotencyKey });
  }

  /** Queues a ping event for this endpoint alone; resolves its (pending) delivery. */
  async test(id: string, options: { idempotencyKey?: string } = {}): Promise<WebhookDelivery> {
    const r = await this.t.request<{ delivery: WebhookDelivery }>({
      method: 'POST', path: `/api/platform/webhooks/${enc(id)}/test`, idempotencyKey: options.idempotencyKey,
    });
    return r.delivery;
  }

  /**
   * The endpoint's deliveries, newest first: `await` gives the first page,
   * `for await` walks them all; startingAfter is an event id.
   */
  deliveries(id: string, params: { limit?: number; startingAfter?: string } = {}): PageIterator<WebhookDelivery> {
    const limit = params.limit ?? 100;
    return new PageIterator<WebhookDelivery>(
      (startingAfter) => this.t.request({ method: 'GET', path: `/api/platform/webhooks/${enc(id)}/deliveries`, query: { limit, startingAfter } }),
      params.startingAfter,
      (d) => d.eventId,
    );
  }

  /** Queues the event's delivery to the endpoint again, due at once; the endpoint must be enabled. */
  async retry(id: string, eventId: string, options: { idempotencyKey?: string } = {}): Promise<WebhookDelivery> {
    const r = await this.t.request<{ delivery: WebhookDelivery }>({
      method: 'POST', path: `/api/platform/webhooks/${enc(id)}/deliveries/${enc(eventId)}/retry`, idempotencyKey: options.idempotencyKey,
    });
    return r.delivery;
  }
}

class Tiers {
  constructor(private readonly t: Transport) {}

  /** The tier config, in the order given. */
  async list(): Promise<Tier[]> {
    return (await this.t.request<{ tiers: Tier[] }>({ method: 'GET', path: '/api/platform/tiers' })).tiers;
  }

  /** Replaces the whole tier config (Stripe products and prices when connected). */
  async replace(tiers: TierInput[]): Promise<Tier[]> {
    return (await this.t.request<{ tiers: Tier[] }>({ method: 'PUT', path: '/api/platform/tiers', body: { tiers } })).tiers;
  }
}

class Keys {
  constructor(private readonly t: Transport) {}

  /** Every key record (never secrets). */
  async list(): Promise<KeyRecord[]> {
    return (await this.t.request<Page<KeyRecord>>({ method: 'GET', path: '/api/platform/keys' })).data;
  }

  /** A new key pair in the key's mode, or the replacement of one (rotate). */
  create(params: KeyCreateParams = {}, options: { idempotencyKey?: string } = {}): Promise<KeyCreated> {
    return this.t.request({ method: 'POST', path: '/api/platform/keys', body: params, idempotencyKey: options.idempotencyKey });
  }

  /** Replaces key id; its secret keeps working for gracePeriodHours (default 24). */
  rotate(id: string, gracePeriodHours?: number): Promise<KeyCreated> {
    return this.create(defined({ rotate: id, gracePeriodHours }));
  }

  /** Revokes a key pair at once. */
  async revoke(id: string): Promise<KeyRecord> {
    return (await this.t.request<{ key: KeyRecord }>({ method: 'DELETE', path: '/api/platform/keys/' + enc(id) })).key;
  }
}

class Plugin {
  constructor(private readonly t: Transport) {}

  /** Uploads a WASM limit policy; validated, it becomes the active version. */
  upload(wasm: Uint8Array | ArrayBuffer, options: PluginUploadOptions = {}): Promise<PluginStatus> {
    return this.t.request({
      method: 'PUT', path: '/api/platform/plugin', query: { onError: options.onError }, raw: wasm,
      contentType: 'application/wasm', idempotencyKey: options.idempotencyKey,
    });
  }

  /** The active version, onError and every uploaded version. */
  get(): Promise<PluginOverview> {
    return this.t.request({ method: 'GET', path: '/api/platform/plugin' });
  }

  /** Runs the active module (or options.version) on input, counting nothing. */
  dryRun(input: DryRunParams = {}, options: { version?: string } = {}): Promise<DryRunResult> {
    return this.t.request({ method: 'POST', path: '/api/platform/plugin/dry-run', query: { version: options.version }, body: input });
  }

  /** Re-activates an earlier version. */
  rollback(version: string): Promise<PluginStatus> {
    return this.t.request({ method: 'POST', path: '/api/platform/plugin/rollback', body: { version } });
  }

  /** Back to built-in limits; the versions are kept. */
  remove(): Promise<{ active: null }> {
    return this.t.request({ method: 'DELETE', path: '/api/platform/plugin' });
  }
}

// ---------------------------------------------------------------- DreamClient

export interface DreamClientOptions {
  /** The platform's publishable key (pk_live_… or pk_test_…): safe in a browser. */
  publishableKey: string;
  /** The end user's JWT for the /api/me calls (or pass one to each call). */
  token?: string;
  baseUrl?: string;
  timeoutMs?: number;
  maxRetries?: number;
  fetch?: typeof fetch;
}

/** What a sign-in or a refresh answers (dream-api's own sign-in, without Clerk). */
export interface AuthTokens {
  /** The access token (a JWT, 15 minutes) for the /api/me calls. */
  token: string;
  expiresAt: string;
  /** Used once: refresh() answers the next one. */
  refreshToken: string;
}

/** A password reset token, shown once. */
export interface ResetToken {
  token: string;
  expiresAt: string;
  customerId: string;
}

/**
 * The browser-safe client: the platform's tiers with a publishable key, and
 * the signed-in end user's own record, usage and checkout with their JWT.
 * On a server without Clerk it also signs the end user in (signIn,
 * refresh, signOut, resetPassword) and keeps the tokens for the /api/me
 * calls.
 */
export class DreamClient {
  private readonly t: Transport;
  private readonly publishableKey: string;
  private token?: string;
  private refreshToken?: string;

  constructor(options: DreamClientOptions) {
    if (!options?.publishableKey) throw new Error('dream-api: DreamClient needs a publishableKey');
    if (/^sk_/.test(options.publishableKey)) throw new Error('dream-api: DreamClient takes a publishable key (pk_…), never a secret key');
    this.t = new Transport({ ...options, key: options.publishableKey });
    this.publishableKey = options.publishableKey;
    this.token = options.token;
  }

  /** Signs the end user in with email and password; the tokens are kept for the /api/me calls. */
  async signIn(email: string, password: string): Promise<AuthTokens> {
    const r = await this.t.request<AuthTokens>({
      method: 'POST', path: '/api/auth/sign-in', body: { email, password, publishableKey: this.publishableKey }, retry: false,
    });
    this.token = r.token;
    this.refreshToken = r.refreshToken;
    return r;
  }

  /**
   * A new access token for the kept (or the given) refresh token, which is
   * used up: keep the answer's. Never resent: a refresh token sent twice
   * ends its session.
   */
  async refresh(refreshToken?: string): Promise<AuthTokens> {
    const rt = refreshToken ?? this.refreshToken;
    if (!rt) throw new Error('dream-api: refresh needs a refresh token: sign in first');
    const r = await this.t.request<AuthTokens>({
      method: 'POST', path: '/api/auth/refresh', body: { refreshToken: rt, publishableKey: this.publishableKey }, retry: false,
    });
    this.token = r.token;
    this.refreshToken = r.refreshToken;
    return r;
  }

  /** Ends the session of the kept (or the given) refresh token and forgets the tokens. */
  async signOut(refreshToken?: string): Promise<void> {
    const rt = refreshToken ?? this.refreshToken;
    this.token = undefined;
    this.refreshToken = undefined;
    if (!rt) return;
    await this.t.request({ method: 'POST', path: '/api/auth/sign-out', body: { refreshToken: rt, publishableKey: this.publishableKey } });
  }

  /** Sets a new password with a reset token from DreamAPI.customers.passwordReset (works once). */
  async resetPassword(token: string, password: string): Promise<void> {
    await this.t.request({ method: 'POST', path: '/api/auth/password-reset', body: { token, password, publishableKey: this.publishableKey }, retry: false });
  }

  /** The platform's tiers. */
  async tiers(): Promise<Tier[]> {
    return (await this.t.request<{ tiers: Tier[] }>({ method: 'GET', path: '/api/tiers' })).tiers;
  }

  private jwt(token?: string): string {
    const t = token ?? this.token;
    if (!t) throw new Error('dream-api: the /api/me calls need the end user\'s token');
    return t;
  }

  /** The signed-in customer. */
  async me(token?: string): Promise<CustomerWithUsage> {
    const r = await this.t.request<{ customer: CustomerWithUsage }>({ method: 'GET', path: '/api/me', auth: this.jwt(token) });
    return r.customer;
  }

  /** The signed-in customer's usage. */
  meUsage(token?: string): Promise<UsageReport> {
    return this.t.request({ method: 'GET', path: '/api/me/usage', auth: this.jwt(token) });
  }

  /** A Stripe Checkout for the signed-in customer. */
  checkout(tier: string, options: CheckoutOptions & { token?: string } = {}): Promise<CheckoutSession> {
    const { idempotencyKey, token, ...rest } = options;
    return this.t.request({ method: 'POST', path: '/api/me/checkout', body: defined({ tier, ...rest }), idempotencyKey, auth: this.jwt(token) });
  }
}

export default DreamAPI;
