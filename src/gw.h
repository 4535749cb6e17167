/*
 * gw.h: the few definitions every callgate module shares: return codes and
 * small helpers. It includes nothing; modules forward-declare what they use.
 */
#ifndef CG_GW_H
#define CG_GW_H

#define GW_OK 0
#define GW_ERR (-1)

#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
