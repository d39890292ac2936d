/** The part of an AbortSignal the client uses: browsers' and Node's both fit. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

interface DomExceptionHost {
  DOMException?: new (message: string, name: string) => Error;
}

/** What an aborted operation rejects with: the signal's reason, like fetch (an AbortError DOMException unless abort() was given one). */
export function abortReason(signal: AbortSignalLike): unknown {
  if (signal.reason !== undefined) return signal.reason;
  const Ctor = (globalThis as DomExceptionHost).DOMException;
  const message = 'the operation was aborted';
  return Ctor ? new Ctor(message, 'AbortError') : Object.assign(new Error(message), { name: 'AbortError' });
}

export function throwIfAborted(signal: AbortSignalLike | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** `promise`, or its rejection with the abort reason once `signal` aborts first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignalLike | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort);
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
