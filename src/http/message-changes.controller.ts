import { Body, Controller, Delete, Get, Param, Patch, Query, UseGuards } from '@nestjs/common';
import { ApiBody, ApiOkResponse, ApiOperation, ApiQuery, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { ChatService } from '../chat/chat.service.js';
import { API_KEY_SCHEME, ApiErrors, ApiPathParam, schemaRef } from './api-docs.decorators.js';
import { ChangesPageModel, MessageModel, MessageVersionListModel } from './api-docs.models.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { asObject, integerParam } from './request-body.js';

/**
 * Changes to stored messages for backend services: edit and delete any message (trusted, so
 * userId null: no membership or sender check), read its versions, and catch up on every change
 * of a room by modSeq. One-line delegations to ChatService.
 */
@ApiTags('messages')
@ApiSecurity(API_KEY_SCHEME)
@ApiPathParam('roomId', 'RoomId')
@Controller('v1/rooms/:roomId')
@UseGuards(ApiKeyGuard)
export class MessageChangesController {
  constructor(private readonly chat: ChatService) {}

  @Patch('messages/:seq')
  @ApiOperation({
    summary: 'Edit a message',
    description:
      'Any message of the room (trusted). `version` grows by 1 on every accepted edit, even with the same body; omitted ' +
      '`mentions` stay as they were. With `expectedVersion` not equal to the stored version: 409 CONFLICT with ' +
      '`details.currentVersion`, and nothing changes. Pushed as `message.updated` to the joined connections.',
  })
  @ApiPathParam('seq', 'Seq')
  @ApiBody({ schema: schemaRef('EditMessage') })
  @ApiOkResponse({ description: 'The edited message, latest state', type: MessageModel })
  @ApiErrors(400, 401, 403, 404, 409, 413, 503)
  editMessage(@Param('roomId') roomId: string, @Param('seq') seq: string, @Body() body: unknown) {
    return this.chat.edit(null, { ...asObject(body), roomId, seq: integerParam(seq) });
  }

  @Delete('messages/:seq')
  @ApiOperation({
    summary: 'Delete a message',
    description:
      'Any message of the room (trusted). A tombstone stays: `body` "", `mentions` and `reactions` empty, `deletedAt` ' +
      'set, `version` + 1. Deleting a deleted message answers its tombstone, unchanged. Pushed as `message.updated` ' +
      '(events out: `message.deleted`).',
  })
  @ApiPathParam('seq', 'Seq')
  @ApiOkResponse({ description: 'The tombstone', type: MessageModel })
  @ApiErrors(400, 401, 403, 404, 503)
  deleteMessage(@Param('roomId') roomId: string, @Param('seq') seq: string) {
    return this.chat.deleteMessage(null, { roomId, seq: integerParam(seq) });
  }

  @Get('messages/:seq/versions')
  @ApiOperation({
    summary: "List a message's versions",
    description: 'Every version, the current one included, oldest first (version 1 has `editedAt: null`); `[]` after a delete.',
  })
  @ApiPathParam('seq', 'Seq')
  @ApiOkResponse({ type: MessageVersionListModel })
  @ApiErrors(400, 401, 404, 503)
  listMessageVersions(@Param('roomId') roomId: string, @Param('seq') seq: string) {
    return this.chat.versions({ roomId, seq: integerParam(seq) });
  }

  @Get('changes')
  @ApiOperation({
    summary: 'Catch up on every change of a room',
    description:
      'Every message whose latest change has modSeq > afterModSeq (new ones included), in its latest state, ascending by ' +
      'modSeq; page on with the last modSeq returned while `hasMore`. A room that does not exist answers ' +
      '`{ messages: [], hasMore: false, lastModSeq: 0, truncated: false }`. `truncated`: a change after afterModSeq is gone with a message removed by retention; the page starts at the floor.',
  })
  @ApiQuery({ name: 'afterModSeq', required: true, schema: schemaRef('ModSeq') })
  @ApiQuery({ name: 'limit', required: false, schema: schemaRef('ChangesLimit') })
  @ApiOkResponse({ type: ChangesPageModel })
  @ApiErrors(400, 401, 503)
  listChanges(@Param('roomId') roomId: string, @Query('afterModSeq') afterModSeq?: string, @Query('limit') limit?: string) {
    return this.chat.changes(null, { roomId, afterModSeq: integerParam(afterModSeq), limit: integerParam(limit) });
  }
}
