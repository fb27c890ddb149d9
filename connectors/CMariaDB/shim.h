#ifndef WEIR_CMARIADB_SHIM_H
#define WEIR_CMARIADB_SHIM_H
#include <mysql.h>
#endif
