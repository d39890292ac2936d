import { Body, Controller, Get, Headers, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import type { Response } from 'express';
import { ChatService } from '../chat/chat.service.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { asObject, queryInteger } from './request-body.js';

/** Messages for backend services: posted on behalf of a user (trusted, no membership check) and read by page. */
@Controller('v1/rooms/:roomId/messages')
@UseGuards(ApiKeyGuard)
export class MessagesController {
  constructor(private readonly chat: ChatService) {}

  /** 201 with the new message, 200 with the stored one for a repeated clientMsgId (or Idempotency-Key). */
  @Post()
  async post(
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
  history(
    @Param('roomId') roomId: string,
    @Query('beforeSeq') beforeSeq?: string,
    @Query('afterSeq') afterSeq?: string,
    @Query('limit') limit?: string,
  ) {
    return this.chat.history(null, {
      roomId,
      beforeSeq: queryInteger(beforeSeq),
      afterSeq: queryInteger(afterSeq),
      limit: queryInteger(limit),
    });
  }
}
