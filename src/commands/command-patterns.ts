/**
 * The command patterns other Nest services send to (`client.send(pattern, data)`). Nest's Redis
 * transport publishes each request on the channel named exactly as its pattern and waits for the
 * reply on `<pattern>.reply`.
 */
export const COMMAND_PATTERNS = {
  messageSend: 'chat.message.send',
  roomUpsert: 'chat.room.upsert',
  memberAdd: 'chat.member.add',
  memberRemove: 'chat.member.remove',
} as const;
