/** The two ways a client connects: socket.io or the plain WebSocket (also a metrics label). */
export const TRANSPORTS = ['socket.io', 'ws'] as const;
export type Transport = (typeof TRANSPORTS)[number];
