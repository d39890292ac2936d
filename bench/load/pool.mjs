// The harness's side of the load generator: N forked worker processes, each with its own event
// loop (so one core is not the limit), called by request/response over IPC.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));

export class WorkerPool {
  constructor(n, { onSpawn } = {}) {
    this.workers = [];
    for (let i = 0; i < n; i++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      const w = { index: i, child, pid: child.pid, calls: new Map(), next: 0 };
      child.on('message', ({ id, ok, result, error }) => {
        const call = w.calls.get(id);
        if (!call) return;
        w.calls.delete(id);
        clearTimeout(call.timer);
        if (ok) call.resolve(result);
        else call.reject(new Error(`worker ${i}: ${error}`));
      });
      child.on('exit', (code, signal) => {
        for (const call of w.calls.values()) {
          clearTimeout(call.timer);
          call.reject(new Error(`worker ${i} exited (${code ?? signal})`));
        }
        w.calls.clear();
      });
      onSpawn?.(child);
      this.workers.push(w);
    }
  }

  get pids() {
    return this.workers.map((w) => w.pid);
  }

  call(i, cmd, args, timeoutMs = 180_000) {
    const w = this.workers[i];
    return new Promise((resolve, reject) => {
      const id = ++w.next;
      const timer = setTimeout(() => {
        w.calls.delete(id);
        reject(new Error(`worker ${i}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      w.calls.set(id, { resolve, reject, timer });
      w.child.send({ id, cmd, args });
    });
  }

  /** Calls every worker; `argsOf(i)` gives each its own arguments. */
  all(cmd, argsOf, timeoutMs) {
    return Promise.all(this.workers.map((_, i) => this.call(i, cmd, typeof argsOf === 'function' ? argsOf(i) : argsOf, timeoutMs)));
  }

  async stop() {
    for (const w of this.workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    }
  }
}
