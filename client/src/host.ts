/**
 * The few host facilities the client needs, read from globalThis so that the same sources compile
 * without DOM or Node typings and run in browsers and in Node 20 alike.
 */
/** The WHATWG URL, which browsers and Node share. */
export interface UrlLike {
  href: string;
  origin: string;
  protocol: string;
  pathname: string;
  readonly searchParams: { set(name: string, value: string): void };
  toString(): string;
}

interface Host {
  URL: new (url: string, base?: string) => UrlLike;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  atob(data: string): string;
  crypto?: { getRandomValues(array: Uint8Array): Uint8Array };
  WebSocket?: unknown;
  location?: { href: string };
}

const host = globalThis as unknown as Host;

/** Parses `url`, relative to `base` if given; throws a TypeError for an invalid URL. */
export function parseUrl(url: string, base?: string): UrlLike {
  return new host.URL(url, base);
}

export type TimerHandle = unknown;

export function setTimer(fn: () => void, ms: number): TimerHandle {
  return host.setTimeout(fn, ms);
}

export function clearTimer(handle: TimerHandle): void {
  if (handle !== undefined && handle !== null) host.clearTimeout(handle);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimer(resolve, ms));
}

export function decodeBase64(data: string): string {
  return host.atob(data);
}

export function globalWebSocket(): unknown {
  return host.WebSocket;
}

/** The page's address, to resolve relative service URLs against; undefined outside browsers. */
export function pageHref(): string | undefined {
  return host.location?.href;
}

/**
 * A random id for clientMsgId (1–64 of [A-Za-z0-9_-]). getRandomValues works on plain-http pages
 * too, unlike crypto.randomUUID, which browsers offer in secure contexts only.
 */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  if (host.crypto) host.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
