#ifndef WEIR_CRDKAFKA_SHIM_H
#define WEIR_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
