// Shared helpers of the SDK tests. They run against a real dream-api that
// cmd/dream-api's TestSDKJS started: DREAM_API_URL and DREAM_ADMIN_TOKEN
// name it; DREAM_TEST_STRIPE_KEY and DREAM_TEST_STRIPE_WEBHOOK_SECRET connect
// a platform's test mode to the stripe-mock behind it.
import { randomBytes } from 'node:crypto';

export const url = required('DREAM_API_URL');
export const adminToken = required('DREAM_ADMIN_TOKEN');

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through TestSDKJS (make sdk-js-test)`);
  return v;
}

export interface Platform {
  platform: { id: string; name: string };
  publishableKey: string;
  secretKey: string;
  test: { publishableKey: string; secretKey: string };
}

/** Creates a platform through the admin API. */
export async function createPlatform(name: string): Promise<Platform> {
  const res = await fetch(url + '/admin/platforms', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + adminToken, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: `${name} ${randomBytes(4).toString('hex')}` }),
  });
  if (res.status !== 201) throw new Error(`create platform: ${res.status} ${await res.text()}`);
  return (await res.json()) as Platform;
}

/** Connects the test mode of a platform to Stripe (stripe-mock) by key. */
export async function connectStripe(testSecretKey: string): Promise<void> {
  const res = await fetch(url + '/api/platform/stripe/connect', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + testSecretKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ secretKey: required('DREAM_TEST_STRIPE_KEY'), webhookSecret: required('DREAM_TEST_STRIPE_WEBHOOK_SECRET') }),
  });
  if (res.status !== 200) throw new Error(`connect Stripe: ${res.status} ${await res.text()}`);
}

/** A unique email. */
export function email(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}@example.com`;
}
