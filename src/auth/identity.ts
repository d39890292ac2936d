/** Who is behind a connection, taken from a verified token. */
export interface Identity {
  userId: string;
  name: string | null;
  /** Token expiry, epoch milliseconds. */
  expiresAt: number;
}
