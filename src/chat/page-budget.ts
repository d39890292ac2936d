import type { HistoryPage, Message } from './chat.events.js';

/**
 * The share of MAX_BUFFERED_BYTES one page of messages may take: a reply bigger than the
 * slow-consumer bound would get its own reader disconnected, and the rest leaves room for the
 * pushes queued behind it.
 */
export const PAGE_SHARE_OF_BUFFER = 0.5;

/**
 * Cuts a page (ascending seq) to what fits in `budgetBytes` of JSON, keeping the messages next to
 * the cursor the client pages on from: the oldest for `afterSeq`, the newest otherwise. A cut page
 * has `hasMore: true`, so the client asks again from the message it got last; at least one message
 * stays, so paging always moves. Measured from the rows already read: no extra query.
 */
export function fitPage(page: HistoryPage, ascending: boolean, budgetBytes: number): HistoryPage {
  const { messages } = page;
  let used = 0;
  let kept = 0;
  for (; kept < messages.length; kept++) {
    const message = messages[ascending ? kept : messages.length - 1 - kept] as Message;
    used += Buffer.byteLength(JSON.stringify(message)) + 1;
    if (kept > 0 && used > budgetBytes) break;
  }
  if (kept === messages.length) return page;
  return { messages: ascending ? messages.slice(0, kept) : messages.slice(messages.length - kept), hasMore: true };
}
