import { Body, Controller, Get, Headers, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiQuery, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { ChatService } from '../chat/chat.service.js';
import { API_KEY_SCHEME, ApiErrors, ApiPathParam, schemaRef } from './api-docs.decorators.js';
import { HistoryPageModel, MessageModel } from './api-docs.models.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { asObject, integerParam } from './request-body.js';

/** Messages for backend services: posted on behalf of a user (trusted, no membership check) and read by page. */
@ApiTags('messages')
@ApiSecurity(API_KEY_SCHEME)
@ApiPathParam('roomId', 'RoomId')
@Controller('v1/rooms/:roomId/messages')
@UseGuards(ApiKeyGuard)
export class MessagesController {
  constructor(private readonly chat: ChatService) {}

  /** 201 with the new message, 200 with the stored one for a repeated clientMsgId (or Idempotency-Key). */
  @Post()
  @ApiOperation({
    summary: 'Post a message on behalf of a user, or a system message',
    description:
      'Trusted: no membership check; a room that does not exist yet is created public. The message is delivered live ' +
      'like any other. With `system: true` and no senderId it is a system message, stored with senderId `system`. ' +
      'With `parentSeq` it is a reply in that thread (the root then changes too: `message.updated`); `mentions` ' +
      'lists mentioned user ids. ' +
      'A repeated (roomId, senderId, clientMsgId) returns the stored message (200) and is not delivered again.',
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Used as clientMsgId when the body has none',
    // ApiHeader adds `type: string` to the schema, which must not stand beside a $ref.
    schema: { allOf: [schemaRef('ClientMsgId')] },
  })
  @ApiBody({ schema: schemaRef('PostMessage') })
  @ApiCreatedResponse({ description: 'Stored now', type: MessageModel })
  @ApiOkResponse({ description: 'Stored before with this clientMsgId: the stored message', type: MessageModel })
  @ApiErrors(400, 401, 403, 413, 503)
  async postMessage(
    @Param('roomId') roomId: string,
    @Body() body: unknown,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ) {
    const input = asObject(body);
    const { message, created } = await this.chat.post({ clientMsgId: idempotencyKey, ...input, roomId });
    res.status(created ? 201 : 200);
    return message;
  }

  @Get()
  @ApiOperation({
    summary: 'Read a page of history, or of one thread',
    description:
      'Ascending by seq. With beforeSeq: the newest `limit` below it; with afterSeq: the oldest `limit` above it; with ' +
      'neither: the newest `limit`. beforeSeq and afterSeq together are VALIDATION_FAILED. With parentSeq: only the ' +
      'replies in that thread, paged the same way.',
  })
  @ApiQuery({ name: 'beforeSeq', required: false, schema: schemaRef('Seq') })
  @ApiQuery({ name: 'afterSeq', required: false, schema: schemaRef('Seq') })
  @ApiQuery({ name: 'parentSeq', required: false, schema: schemaRef('Seq'), description: "The thread root's seq" })
  @ApiQuery({ name: 'limit', required: false, schema: schemaRef('PageLimit') })
  @ApiOkResponse({ type: HistoryPageModel })
  @ApiErrors(400, 401, 503)
  listMessages(
    @Param('roomId') roomId: string,
    @Query('beforeSeq') beforeSeq?: string,
    @Query('afterSeq') afterSeq?: string,
    @Query('parentSeq') parentSeq?: string,
    @Query('limit') limit?: string,
  ) {
    return this.chat.history(null, {
      roomId,
      beforeSeq: integerParam(beforeSeq),
      afterSeq: integerParam(afterSeq),
      parentSeq: integerParam(parentSeq),
      limit: integerParam(limit),
    });
  }
}
