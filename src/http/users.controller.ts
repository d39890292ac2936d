import { Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { parseInput, userRef } from '../chat/chat.schemas.js';
import { UserDisconnector } from '../realtime/user-disconnector.js';
import { API_KEY_SCHEME, ApiErrors, ApiPathParam } from './api-docs.decorators.js';
import { DisconnectAcceptedModel } from './api-docs.models.js';
import { ApiKeyGuard } from './api-key.guard.js';

/**
 * Users' live sessions, for backend services. Calls the realtime layer directly: closing
 * connections is a transport matter that stores nothing, so the chat domain has no part in it.
 */
@ApiTags('users')
@ApiSecurity(API_KEY_SCHEME)
@Controller('v1/users/:userId')
@UseGuards(ApiKeyGuard)
export class UsersController {
  constructor(private readonly disconnector: UserDisconnector) {}

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
  disconnect(@Param('userId') userId: string) {
    const user = parseInput(userRef, { userId });
    this.disconnector.disconnect(user.userId);
    return { userId: user.userId };
  }
}
