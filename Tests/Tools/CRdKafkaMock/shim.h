#ifndef WEIR_CRDKAFKAMOCK_SHIM_H
#define WEIR_CRDKAFKAMOCK_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
