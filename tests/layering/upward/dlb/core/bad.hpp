#pragma once
// A core header that includes a model header: the layering check must refuse it.
#include "dlb/model/model.hpp"
