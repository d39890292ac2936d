/**
 * Names of the Redis keys that must share a hash slot on a Redis Cluster.
 *
 * Only presence needs one: its scripts change a room's hashes, an instance's set and the lease
 * zset in one atomic step, and the sweep walks every room a dead instance had entered, so all of
 * a deployment's presence keys live under one hash tag, `{<prefix>}:presence:…`, on one shard.
 * Every other key is used alone (rate windows `<prefix>:rate:…`, command claims `<prefix>:cmd:…`,
 * the events stream), so those keep their names and spread over the cluster.
 *
 * A room's sharded pub/sub channel on a cluster, `<prefix>:room:<roomId>`, carries that room's
 * pushes between the instances that have members in it (RoomChannels); without a hash tag, the
 * rooms' channels spread over the shards.
 *
 * On one server the names stay exactly as they were (`<prefix>:presence:…`): a rolling update
 * from an older version keeps every instance on the same presence keys. Renaming them there
 * would split presence between old and new instances for the length of the rollout.
 */
export class RedisNames {
  /** What every presence key starts with. */
  readonly presence: string;

  constructor(
    private readonly prefix: string,
    cluster: boolean,
  ) {
    this.presence = cluster ? `{${prefix}}:presence` : `${prefix}:presence`;
  }

  roomChannel(roomId: string): string {
    return `${this.prefix}:room:${roomId}`;
  }
}
