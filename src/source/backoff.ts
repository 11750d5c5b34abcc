// Retrying without storms (Twilio): capped exponential backoff with full jitter,
// and sleeps that end early when the work is being stopped.

const BASE_MS = 250;
const CAP_MS = 15_000;

/** Delay before retry number `attempt` (0-based): random in [0, min(cap, base·2^attempt)]. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.max(BASE_MS / 2, Math.floor(random() * ceiling));
}

/** Waits `ms`, or less if the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
