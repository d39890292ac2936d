/**
 * The commands other Nest services send (`client.send(channel, data)`), named without the
 * deployment's prefix. Nest's Redis transport publishes each request on the channel named exactly
 * as the client's pattern and waits for the reply on `<pattern>.reply`; a deployment serves them on
 * `<REDIS_PREFIX>.<command>` (CommandChannels), so two deployments on one Redis never answer each
 * other's requests.
 */
export const COMMAND_PATTERNS = {
  messageSend: 'message.send',
  messageEdit: 'message.edit',
  messageDelete: 'message.delete',
  roomUpsert: 'room.upsert',
  memberAdd: 'member.add',
  memberRemove: 'member.remove',
} as const;

/** The prefix of the contract's command channels (`chat.message.send`, …): REDIS_PREFIX's default. */
export const CONTRACT_PREFIX = 'chat';

/** Which channel carries which command for one deployment. */
export class CommandChannels {
  /** Longest first, so `chat.x.message.send` is `message.send` of prefix `chat.x`, not `x.message.send` of `chat`. */
  private readonly prefixes: string[];

  /** `barePatterns`: also the contract's `chat.*` channels, for a deployment whose own prefix is another (COMMANDS_BARE_PATTERNS). */
  constructor(prefix: string, barePatterns: boolean) {
    const prefixes = barePatterns && prefix !== CONTRACT_PREFIX ? [prefix, CONTRACT_PREFIX] : [prefix];
    this.prefixes = prefixes.sort((a, b) => b.length - a.length);
  }

  /** Whether the contract's bare channels are served although the deployment's prefix is another. */
  get servesBare(): boolean {
    return this.prefixes.length > 1;
  }

  /** Every channel to subscribe to for these commands. */
  channels(commands: Iterable<string>): string[] {
    return [...commands].flatMap((command) => this.prefixes.map((prefix) => `${prefix}.${command}`));
  }

  /** The command a channel carries, or null for a channel of no prefix of this deployment. */
  commandOf(channel: string): string | null {
    const prefix = this.prefixes.find((p) => channel.startsWith(`${p}.`));
    return prefix === undefined ? null : channel.slice(prefix.length + 1);
  }
}
