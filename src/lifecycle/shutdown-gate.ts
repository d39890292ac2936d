import { Injectable } from '@nestjs/common';

type Phase = 'serving' | 'draining' | 'closing';

/**
 * The shutdown state a SIGTERM starts, and the count of requests in flight.
 * - draining: readiness fails and new connections are refused, while existing connections are
 *   still served, so load balancers take the instance out before its clients reconnect;
 * - closing: new requests are refused too, and shutdown waits for those in flight.
 */
@Injectable()
export class ShutdownGate {
  private phase: Phase = 'serving';
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  /** True from SIGTERM on: readiness fails and handshakes are refused. */
  get draining(): boolean {
    return this.phase !== 'serving';
  }

  beginDraining(): void {
    if (this.phase === 'serving') this.phase = 'draining';
  }

  beginClosing(): void {
    this.phase = 'closing';
  }

  /** Admits a request unless closing; every admitted request must call leave() once. */
  enter(): boolean {
    if (this.phase === 'closing') return false;
    this.inFlight++;
    return true;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight > 0) return;
    for (const resolve of this.idleWaiters) resolve();
    this.idleWaiters = [];
  }

  /** Resolves true once no request is in flight, or false when timeoutMs passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
