import { once } from 'node:events';
import { Controller, Get, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { parseInput, userRef } from '../chat/chat.schemas.js';
import { ChatService } from '../chat/chat.service.js';
import { UserDisconnector } from '../realtime/user-disconnector.js';
import { API_KEY_SCHEME, ApiErrors, ApiPathParam } from './api-docs.decorators.js';
import { DisconnectAcceptedModel, ErasureModel } from './api-docs.models.js';
import { ApiKeyGuard, FullKeyOnly } from './api-key.guard.js';

/**
 * Users' live sessions and data, for backend services. Closing connections is a transport matter
 * that stores nothing, so the realtime layer is called directly; erasure and export go through the chat domain.
 */
@ApiTags('users')
@ApiSecurity(API_KEY_SCHEME)
@Controller('v1/users/:userId')
@UseGuards(ApiKeyGuard)
export class UsersController {
  constructor(
    private readonly disconnector: UserDisconnector,
    private readonly chat: ChatService,
  ) {}

  /** 202: accepted here and relayed to the other instances, which close their connections of the user when it arrives. */
  @Post('disconnect')
  @HttpCode(202)
  @ApiOperation({
    summary: "Close all of a user's connections on every instance",
    description:
      'socket.io clients get a server-side disconnect (`io server disconnect`) and do not reconnect by themselves; raw ws ' +
      'clients are closed with code 4003, reason `disconnected by the service`. Relayed to the other instances through ' +
      'Redis, best effort. It does not stop the user from connecting again with a valid token.',
  })
  @ApiPathParam('userId', 'UserId', 'The user id (a token `sub`)')
  @ApiAcceptedResponse({
    description: 'The disconnect was carried out here and sent to the other instances',
    type: DisconnectAcceptedModel,
  })
  @ApiErrors(400, 401, 403)
  disconnectUser(@Param('userId') userId: string) {
    const user = parseInput(userRef, { userId });
    this.disconnector.disconnect(user.userId);
    return { userId: user.userId };
  }

  /**
   * The connections are closed first, so that no live session of the user stores anything while
   * the erasure runs, and again at the end, for one that connected meanwhile.
   */
  @Post('erase')
  @HttpCode(200)
  @FullKeyOnly()
  @ApiOperation({
    summary: "Erase a user's data",
    description:
      'Every message the user sent becomes a tombstone (a change: new modSeq, `message.updated` pushes, `message.deleted` ' +
      "events out), its versions are purged; the user's reactions (each a change of its message), read state and " +
      'memberships (`member.removed` events) are removed, and their connections closed on every instance as by ' +
      '`…/disconnect`. Runs in bounded batches (100 rows a transaction, under one room lock at a time). Idempotent: a ' +
      'second call, or a call for a user never seen, answers zeros. A call that failed (503) is finished by the next.',
  })
  @ApiPathParam('userId', 'UserId', 'The user id (a token `sub`)')
  @ApiOkResponse({ description: 'What this call removed', type: ErasureModel })
  @ApiErrors(400, 401, 403, 503)
  async eraseUser(@Param('userId') userId: string) {
    const user = parseInput(userRef, { userId });
    this.disconnector.disconnect(user.userId);
    const counts = await this.chat.eraseUser(user);
    this.disconnector.disconnect(user.userId);
    return counts;
  }

  /**
   * Streamed page by page: the next page is read only once the response has taken the previous
   * one (write() answering false waits for drain), and a client that goes away stops the reads.
   * A failure before the first line answers an error body; after it, the connection is cut, so a
   * truncated export never passes for a complete one.
   */
  @Get('export')
  @FullKeyOnly()
  @ApiOperation({
    summary: "Export a user's data as NDJSON",
    description:
      'One JSON object a line: `{ type: "message", …Message }` for every message the user sent (tombstones included, ' +
      'as history shows them; none below a room’s floorSeq), by roomId then seq; then `{ type: "reaction", roomId, seq, key }`, ' +
      '`{ type: "membership", roomId, role }` and `{ type: "read", roomId, lastReadSeq }`. A user never seen gets an ' +
      'empty body. Not for `key:read` keys (403).',
  })
  @ApiProduces('application/x-ndjson')
  @ApiPathParam('userId', 'UserId', 'The user id (a token `sub`)')
  @ApiOkResponse({ description: 'NDJSON, one object a line', content: { 'application/x-ndjson': { schema: { type: 'string' } } } })
  @ApiErrors(400, 401, 403, 503)
  async exportUser(@Param('userId') userId: string, @Res() res: Response): Promise<void> {
    const lines = this.chat.exportUser({ userId });
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    try {
      for await (const line of lines) {
        if (!res.headersSent) res.status(200).type('application/x-ndjson');
        if (!res.write(JSON.stringify(line) + '\n')) await once(res, 'drain', { signal: gone.signal });
        if (gone.signal.aborted) return;
      }
    } catch (err) {
      if (gone.signal.aborted) return;
      if (!res.headersSent) throw err;
      res.destroy(err as Error);
      return;
    }
    if (!res.headersSent) res.status(200).type('application/x-ndjson');
    res.end();
  }
}
