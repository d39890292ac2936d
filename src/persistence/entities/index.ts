import { MessageEntity } from './message.entity.js';
import { RoomEntity } from './room.entity.js';

export const entities = [RoomEntity, MessageEntity];
