import type { HistoryPage, RoomsPage } from './chat.events.js';

/**
 * The share of MAX_BUFFERED_BYTES one page (of messages, of rooms) may take: a reply bigger than
 * the slow-consumer bound would get its own reader disconnected, and the rest leaves room for the
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
  const kept = fitting(messages, ascending, budgetBytes);
  if (kept === messages.length) return page;
  return { messages: ascending ? messages.slice(0, kept) : messages.slice(messages.length - kept), hasMore: true };
}

/** A rooms.list page cut the same way: the first rooms (by roomId) stay, the client pages on with `afterRoomId`. */
export function fitRooms(page: RoomsPage, budgetBytes: number): RoomsPage {
  const kept = fitting(page.rooms, true, budgetBytes);
  return kept === page.rooms.length ? page : { rooms: page.rooms.slice(0, kept), hasMore: true };
}

/** How many items, counted from the start (or the end), fit in `budgetBytes` of JSON; at least one. */
function fitting(items: readonly unknown[], fromStart: boolean, budgetBytes: number): number {
  let used = 0;
  let kept = 0;
  for (; kept < items.length; kept++) {
    used += Buffer.byteLength(JSON.stringify(items[fromStart ? kept : items.length - 1 - kept])) + 1;
    if (kept > 0 && used > budgetBytes) break;
  }
  return kept;
}
