"""The emulated hardware at run time: arena, atomics, struct layouts, locks, inboxes."""
