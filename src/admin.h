/*
 * admin.h: the operators' API, behind the admin token (conf "admin"):
 * GET /admin/routes (the loaded table and its version), POST
 * /admin/routes/reload (build the table beside the old one and swap it in;
 * a bad table is refused with its errors), POST /admin/routes/explain
 * (calls.c: a call request in, the decision out, nothing placed). When
 * admin.listen is set these are served only on that address.
 */
#ifndef CG_ADMIN_H
#define CG_ADMIN_H

struct front_req;

void admin_routes_get(struct front_req *r);
void admin_routes_reload(struct front_req *r);

/* GET /admin/vendors: each vendor's capabilities, circuit (this replica) and health. */
void admin_vendors(struct front_req *r);

#endif
