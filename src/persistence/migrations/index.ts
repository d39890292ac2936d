import { CreateRoomsAndMessages1764180000000 } from './1764180000000-CreateRoomsAndMessages.js';

/** Every migration, oldest first. */
export const migrations = [CreateRoomsAndMessages1764180000000];
